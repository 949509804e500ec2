"""The study's bookkeeping of trials, apart from how they are executed (Ray lives in
``rampsearch.search``): what a job to train is, asking the sampler for a feasible ramp,
recording a ramp on its trial, telling the study how a training ended, and what a study still
lacks. Importing it never imports Ray, so ranking, reporting and exporting a study do not
either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

import iformer
from search_spaces import CONSTRAINT_KEY

from ..attributes import Attr, Role, Status
from . import storage as study_lib

if TYPE_CHECKING:
    from .plan import SearchPlan

MAX_REJECTIONS = 2000  # consecutive over-budget proposals before the search gives up


@dataclass(frozen=True)
class FixedJob:
    """A ramp to train that the sampler did not propose: a baseline, or a re-evaluation."""

    role: str                      # "baseline" | "reeval"
    label: str                     # baseline name, or "#<source trial> seed <s>"
    ramp: list[int]
    seed: int | None = None        # None: the proxy's own seed
    attrs: dict[str, Any] | None = None   # extra user attributes of the trial


@dataclass(frozen=True)
class Job:
    """One ramp handed from the searcher to a Ray trial."""

    number: int          # Optuna trial number
    ramp: list[int]
    role: str            # "candidate" | "baseline" | "reeval"
    label: str
    seed: int | None = None


def new_fixed_trial(study: optuna.Study, plan: SearchPlan, job: FixedJob) -> optuna.Trial:
    """A trial for a ramp the sampler did not propose. A baseline carries the space's
    parameters when the space can express it (so the sampler learns from it); a
    re-evaluation, measured at another fidelity, carries only user attributes."""
    ramp = job.ramp
    params = plan.space.encode(ramp) if job.role == Role.BASELINE else None
    if params is not None:
        study.enqueue_trial(params, skip_if_exists=False)
    trial = study.ask()
    if params is not None:
        sampled = plan.space.suggest(trial)
        if list(sampled) != list(ramp):  # the space's encoder and decoder disagree
            raise RuntimeError(f"space {plan.space.name} encodes {ramp} but decodes {sampled}")
    record_ramp(trial, plan, ramp, role=job.role)
    if job.role == Role.BASELINE:
        trial.set_user_attr(Attr.BASELINE, job.label)
    if job.seed is not None:
        trial.set_user_attr(Attr.SEED, job.seed)
    for key, value in (job.attrs or {}).items():
        trial.set_user_attr(key, value)
    return trial


def ask_feasible(study: optuna.Study, plan: SearchPlan) -> tuple[optuna.Trial, list[int]]:
    """The next feasible proposal. Over-budget proposals are told back as PRUNED with their
    constraint value (no training); Optuna's samplers read trial constraints and learn the
    boundary."""
    for _ in range(MAX_REJECTIONS):
        trial = study.ask()
        proposal = plan.space.propose(trial, plan.budget)
        if proposal.feasible:
            record_ramp(trial, plan, proposal.ramp, role=Role.CANDIDATE)
            if proposal.repaired:
                trial.set_user_attr(Attr.REPAIRED, True)
            return trial, list(proposal.ramp)
        trial.set_user_attr(Attr.ROLE, Role.REJECTED)
        trial.set_user_attr(Attr.END_REASON,
                            f"over budget: {proposal.flops:,} > {plan.budget.flops:,} FLOPs")
        study.tell(trial, state=TrialState.PRUNED)
    raise RuntimeError(f"{MAX_REJECTIONS} proposals in a row were over the budget; the "
                       f"sampler cannot find the feasible region of space {plan.space.name}.")


def record_ramp(trial: optuna.Trial, plan: SearchPlan, ramp: list[int], role: str) -> None:
    """The ramp's facts on its trial. A candidate's ramp, FLOPs and constraint were written by
    ``SearchSpace.propose``; a fixed job's are written here."""
    config = plan.space.base.with_ramp(ramp)
    flops = plan.space.flops(ramp, plan.budget.img_size)  # the cost table the search prices with
    trial.set_user_attr(Attr.ROLE, role)
    if role != Role.CANDIDATE:
        trial.set_user_attr(Attr.RAMP, list(ramp))
        trial.set_user_attr(Attr.FLOPS, flops)
        trial.set_constraint(CONSTRAINT_KEY, float(flops - plan.budget.flops))
    trial.set_user_attr(Attr.HIGH_RATIOS, [round(r, 4) for r in config.high_ratios()])
    trial.set_user_attr(Attr.PARAMS, iformer.count_params(config))
    trial.set_user_attr(Attr.WITHIN_BUDGET, flops <= plan.budget.flops)
    trial.set_user_attr(Attr.PROXY, plan.proxy.to_dict())


def tell_outcome(study: optuna.Study, trial: optuna.Trial, result: dict | None,
                 error: bool, objective: str) -> dict[str, Any]:
    """Record how a Ray trial ended and tell the study its ``objective`` (a recorded score:
    'val_loss' or 'top1'). Both scores are always recorded. Returns what was recorded."""
    result = result or {}
    epochs = int(result.get("epoch", 0) or 0)
    status = result.get("status") if result.get("final") else None
    if error:  # not the ramp's failure: retried (RampSearcher.retry), listed last
        status, reason = Status.WORKER_LOST, ("the Ray worker died (preempted, killed for "
                                                 "memory or its node lost; see the trial's "
                                                 "error file under ray/)")
    elif status is None:
        status, reason = Status.STOPPED, f"stopped by the scheduler after epoch {epochs}"
    else:
        reason = result.get("reason") or status
    wall_s = float(result.get("wall_s", result.get("elapsed_s", 0.0)) or 0.0)
    attrs = {Attr.STATUS: status, Attr.END_REASON: reason, Attr.EPOCHS_REACHED: epochs,
             Attr.WALL_S: round(wall_s, 2)}
    if study_lib.failure_kind(status):
        attrs[Attr.FAILURE] = study_lib.failure_kind(status)
    for key in (Attr.TOP1, Attr.TOP5, Attr.VAL_LOSS):
        if key in result and result[key] is not None and math.isfinite(float(result[key])):
            attrs[key] = float(result[key])
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if status == Status.COMPLETED and objective in attrs:
        values = [attrs[objective]]
        if len(study.directions) > 1:
            values.append(trial.user_attrs[Attr.FLOPS] / 1e9)
        study.tell(trial, values)
    elif status == Status.STOPPED:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
    return attrs


# ------------------------------------------------------------------------------ the run


def work_left(study: optuna.Study, plan: SearchPlan) -> tuple[list[FixedJob], int]:
    """Baselines not yet measured, and how many candidates are still wanted."""
    done = study_lib.baselines_done(study)
    baselines = [FixedJob(Role.BASELINE, name, list(ramp))
                 for name, ramp in plan.space.baselines().items() if name not in done]
    candidates = max(0, plan.trials - len(study_lib.ended_trials(study, Role.CANDIDATE)))
    return baselines, candidates
