"""The one-shot search's bookkeeping, apart from where subnets are scored (Ray lives in
``rampsearch.cluster.oneshot``): which ramps a study still wants scored, and recording a
supernet score on its trial as a stand-alone training's score is recorded, so the
sampler, ``rank``, ``report``, ``export`` and the dashboard read both alike.

The sampler proposes from an in-memory copy of the study (:class:`SamplingCopy`): a
proposal there costs no storage write per parameter, which at SQLite's commit per write
would cost more than scoring the ramp. Finished trials are written into the stored study
in order, in batches, so the stored study holds every score told, and nothing asked but not
told (an interrupted run leaves nothing to recover).

A ramp scored once is never scored again, and is one observation: a later proposal of the
same ramp (TPE repeats itself once it converges, and the space's repair of over-budget
proposals folds many onto one ramp) is told FAIL in the copy, so the sampler's model is not
pulled further onto ramps it has already seen (TPE reads complete and pruned trials only),
and is never written to the stored study, where each ramp is one trial.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna

from ..attributes import Attr, Role, Status
from ..study import storage as study_lib
from ..study.trials import FixedJob, ask_feasible, new_fixed_trial, tell_outcome, work_left
from .scoring import SUPERNET, RampScore

if TYPE_CHECKING:
    from ..study.plan import SearchPlan

Ramp = tuple[int, ...]
MAX_REPEATS = 500  # proposals in a row of ramps already scored before the search ends


@dataclass(frozen=True)
class ScoreJob:
    """A trial asked for a ramp to score: a baseline (``label`` its name) or a candidate."""

    trial: optuna.Trial
    ramp: Ramp
    role: str
    label: str


def known_scores(study: optuna.Study) -> dict[Ramp, tuple[int, RampScore]]:
    """The supernet scores a study already holds, by ramp, with the trial that scored each
    first (from an earlier, interrupted run of the same study and supernet)."""
    scores: dict[Ramp, tuple[int, RampScore]] = {}
    for trial in study_lib.ended_trials(study, Role.CANDIDATE) + study_lib.ended_trials(
            study, Role.BASELINE):
        attrs = trial.user_attrs
        if attrs.get(Attr.SCORE_SOURCE) != SUPERNET or attrs.get(Attr.STATUS) != Status.COMPLETED:
            continue
        ramp = tuple(int(a) for a in attrs[Attr.RAMP])
        if ramp in scores and scores[ramp][0] < trial.number:
            continue
        score = RampScore(ramp, float(attrs[Attr.VAL_LOSS]), float(attrs[Attr.TOP1]),
                          float(attrs.get(Attr.TOP5, 0.0)), float(attrs.get(Attr.WALL_S, 0.0)),
                          int(attrs.get(Attr.SCORE_IMAGES, 0)))
        scores[ramp] = trial.number, score
    return scores


def score_jobs(study: optuna.Study, plan: SearchPlan, seen: set[Ramp]) -> Iterator[ScoreJob]:
    """The trials to score, asked one at a time as they are consumed (so the sampler sees
    every score told before it proposes the next ramp): the baselines not yet scored, then
    candidates until the study holds ``plan.trials`` distinct candidate ramps. ``seen`` holds
    the candidate ramps scored or being scored (the caller adds each job's ramp as it takes
    it). A sampler that proposes only ramps already seen MAX_REPEATS times in a row has
    converged (or the space within the budget is that small): the search ends there."""
    baselines, _ = work_left(study, plan)
    for fixed in baselines:
        yield baseline_job(study, plan, fixed)
    repeats = 0
    while len(seen) < plan.trials and repeats < MAX_REPEATS:
        trial, ramp = ask_feasible(study, plan)
        repeats = repeats + 1 if tuple(ramp) in seen else 0
        yield ScoreJob(trial, tuple(ramp), Role.CANDIDATE, f"#{trial.number}")


def baseline_job(study: optuna.Study, plan: SearchPlan, fixed: FixedJob) -> ScoreJob:
    trial = new_fixed_trial(study, plan, fixed)
    return ScoreJob(trial, tuple(fixed.ramp), fixed.role, fixed.label)


def tell_score(study: optuna.Study, job: ScoreJob, score: RampScore, objective: str,
               epochs: int) -> dict[str, Any]:
    """Record ``score`` on the job's trial as a completed training would be recorded (both
    scores, the supernet's epochs, the scoring CPU-seconds as its time) with
    ``score_source = supernet``, and tell the study (FAIL, status diverged, for a score
    that is not finite)."""
    job.trial.set_user_attr(Attr.SCORE_SOURCE, SUPERNET)
    job.trial.set_user_attr(Attr.SCORE_IMAGES, score.images)
    if math.isfinite(score.val_loss):
        status, reason = Status.COMPLETED, Status.COMPLETED
    else:  # the subnet diverged: the ramp's own failure
        status, reason = Status.DIVERGED, "the subnet's validation loss is not finite"
    result = {"final": True, "status": status, "reason": reason, "epoch": epochs,
              "val_loss": score.val_loss, "top1": score.top1, "top5": score.top5,
              "wall_s": score.cpu_s}
    return tell_outcome(study, job.trial, result, False, objective)


def tell_duplicate(study: optuna.Study, job: ScoreJob, first: int) -> None:
    """A proposal of a ramp the copy's trial ``first`` holds: FAIL, never written."""
    job.trial.set_user_attr(Attr.DUPLICATE_OF, first)
    study.tell(job.trial, state=optuna.trial.TrialState.FAIL)


class SamplingCopy:
    """An in-memory study with the stored study's finished trials, sampler and directions,
    whose finished trials :meth:`flush` writes into the stored study in trial order."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self.memory = optuna.create_study(storage=optuna.storages.InMemoryStorage(),
                                          sampler=study.sampler, directions=study.directions)
        stored = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        self.memory.add_trials(stored)
        # copy's trial number -> the stored study's, for the trials both hold
        self.numbers = {index: trial.number for index, trial in enumerate(stored)}
        self.written = len(stored)

    def stored_number(self, number: int) -> int | None:
        """The stored study's number of the copy's trial ``number`` (None: not written)."""
        return self.numbers.get(number)

    def flush(self) -> int:
        """Write the copy's finished trials after the last written, up to the first one still
        running, leaving out repeated proposals; how many were written."""
        ready = []
        for trial in self.memory.get_trials(deepcopy=False)[self.written:]:
            if not trial.state.is_finished():
                break
            ready.append(trial)
        self.written += len(ready)
        kept = [trial for trial in ready if Attr.DUPLICATE_OF not in trial.user_attrs]
        first = len(self.study.get_trials(deepcopy=False))
        for offset, trial in enumerate(kept):
            self.numbers[trial.number] = first + offset
        if kept:
            self.study.add_trials(kept)
        return len(kept)
