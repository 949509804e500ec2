"""Optuna on Ray: the sampler proposes ramps, Ray Tune trains them, the study records them.

Why not Ray's ``OptunaSearch`` and ``Tuner.restore``: OptunaSearch records trials stopped by a
scheduler as COMPLETE with their truncated score, and restoring a Tune experiment after a hard
kill breaks when the searcher has persistent storage. Here the Optuna study is the only state
that survives a run. :class:`RampSearcher` asks the study for a ramp, checks it against the
FLOPs budget (an over-budget proposal is told back as PRUNED with its constraint value and is
never trained), hands feasible ramps to Tune, and tells the study how each trial ended. Every
run builds a fresh Tuner over what the study still lacks, so resuming after Ctrl-C or
``kill -9`` is: recover interrupted trials, count what ended, run the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
from ray import tune
from ray.tune.search import Searcher

from iformer import IFormerConfig

from ..attributes import Attr, Role, Status
from ..data import ProxyData
from ..errors import StorageFault, storage_error_types
from ..study import storage as study_lib
from ..study.plan import SearchPlan
from ..study.trials import FixedJob, Job, ask_feasible, new_fixed_trial, tell_outcome
from ..training.proxy import ProxySettings
from .connection import cluster_concurrency, ray_session


# --------------------------------------------------------------------------- trial worker
def train_trial(config: dict[str, Any], data: ProxyData, base: dict[str, Any],
                proxy: dict[str, Any], threads: int) -> None:
    """Ray Tune function trainable: trains one ramp and reports after every epoch.

    Exceptions are caught and reported as a final result, so the driver can record the
    reason instead of a bare "error".
    """
    from ..training.proxy import train_proxy

    settings = ProxySettings.from_dict(proxy)
    if config.get("seed") is not None:
        settings = dataclasses.replace(settings, seed=int(config["seed"]))
    model_config = IFormerConfig.from_dict(base).with_ramp(config["ramp"])

    def report_epoch(metrics: Any) -> bool:
        # The last epoch's report is the final one: a scheduler that stops trials at max_t
        # (ASHA) would otherwise end a full-length trial before its outcome is reported.
        last = metrics.epoch >= settings.epochs
        outcome = {"status": Status.COMPLETED, "reason": "completed"} if last else {}
        tune.report({**_metrics_dict(metrics), "final": last, **outcome})
        return False

    try:
        result = train_proxy(model_config, data, settings, on_epoch=report_epoch,
                             num_threads=threads)
    except Exception as exc:  # recorded on the trial, the search goes on
        tune.report({"final": True, "status": Status.FAILED,
                     "reason": f"{type(exc).__name__}: {exc}"[:500], "epoch": 0})
        return
    if result.status == Status.COMPLETED and result.epochs_run >= settings.epochs:
        return  # reported with the last epoch
    tune.report({"final": True, "status": result.status, "reason": result.reason,
                 "epoch": result.epochs_run, "top1": result.top1, "top5": result.top5,
                 "val_loss": result.val_loss, "wall_s": result.wall_s})


def _metrics_dict(metrics: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(metrics).items() if isinstance(v, (int, float, str))}


# ------------------------------------------------------------------------------ searcher
class RampSearcher(Searcher):
    """Asks the study for ramps and tells it how each Ray trial ended."""

    def __init__(self, study: optuna.Study, plan: SearchPlan, fixed_jobs: list[FixedJob],
                 candidates_wanted: int, on_event: Callable[[str, Job, dict], None]) -> None:
        self.objective = plan.objective
        super().__init__(metric=self.objective.key,
                         mode="max" if self.objective.maximize else "min")
        self.study, self.plan, self.on_event = study, plan, on_event
        self.pending = list(fixed_jobs)
        self.candidates_left = candidates_wanted
        self.live: dict[str, tuple[optuna.Trial, Job]] = {}
        self.fixed: dict[int, FixedJob] = {}      # trial number -> its fixed job, for retries
        self.storage_fault: BaseException | None = None  # the study storage failed
        self.lost: dict[tuple, int] = {}          # retry_key -> Ray workers lost in this run
        # Optuna keeps intermediate values for single-objective studies only.
        self.report_curves = len(study.directions) == 1

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the searcher into its experiment checkpoint. We never restore from it
        # (the study is the state that survives), so the live objects stay out of the pickle.
        state = dict(self.__dict__)
        for name in ("study", "on_event", "live", "storage_fault"):
            state.pop(name, None)
        return state

    @contextlib.contextmanager
    def watching_storage(self) -> Iterator[None]:
        """Remembers a storage failure inside a Tune callback: Tune wraps what a callback
        raises in a TuneError that carries only a traceback's text."""
        try:
            yield
        except storage_error_types() as exc:
            self.storage_fault = self.storage_fault or exc
            raise

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        with self.watching_storage():
            return self._suggest(trial_id)

    def _suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.pending:
            fixed = self.pending.pop(0)
            trial = new_fixed_trial(self.study, self.plan, fixed)
            job = Job(trial.number, fixed.ramp, fixed.role, fixed.label, fixed.seed)
            self.fixed[job.number] = fixed
        elif self.candidates_left > 0:
            trial, ramp = ask_feasible(self.study, self.plan)
            self.candidates_left -= 1
            job = Job(trial.number, ramp, Role.CANDIDATE, f"#{trial.number}")
        else:
            return Searcher.FINISHED
        trial.set_user_attr(Attr.RAY_TRIAL_ID, trial_id)
        trial.set_user_attr(Attr.ATTEMPT, self.lost.get(retry_key(job), 0) + 1)
        self.live[trial_id] = (trial, job)
        self.on_event("start", job, {})
        return {"ramp": job.ramp, "optuna_trial": job.number, "role": job.role,
                "label": job.label, "seed": job.seed}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.live:
            return
        trial, job = self.live[trial_id]
        key = self.objective.key
        if self.report_curves and result.get(key) is not None and result.get("epoch"):
            value = float(result[key])
            if math.isfinite(value):
                with self.watching_storage():
                    trial.report(value, step=int(result["epoch"]))  # live curves
        if not result.get("final"):
            self.on_event("epoch", job, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id not in self.live:
            return
        trial, job = self.live.pop(trial_id)
        with self.watching_storage():
            outcome = tell_outcome(self.study, trial, result, error, self.objective.key)
            if error:
                outcome = {**outcome, "retrying": self.retry(trial, job)}
        self.on_event("end", job, outcome)

    def retry(self, trial: optuna.Trial, job: Job) -> bool:
        """Queue a job whose Ray worker died once more, at most ``plan.worker_retries`` times
        in this run. The ramp did nothing wrong: the same ramp (and seed) is trained again.
        A later run (--resume, or the same rank/fidelity command) finds it still missing."""
        key = retry_key(job)
        self.lost[key] = self.lost.get(key, 0) + 1
        if self.lost[key] > self.plan.worker_retries:
            return False
        if job.role == Role.CANDIDATE:
            self.study.enqueue_trial(trial.params, user_attrs={Attr.REQUEUED_FROM: trial.number})
            self.candidates_left += 1
        else:
            self.pending.insert(0, self.fixed[job.number])
        return True


def retry_key(job: Job) -> tuple:
    """What makes two trainings the same job: a candidate's ramp, a fixed job's label."""
    return (job.role, tuple(job.ramp) if job.role == Role.CANDIDATE else job.label, job.seed)


@dataclass(frozen=True)
class SearchOutcome:
    interrupted: bool
    recovered: list[int]
    trained: dict[str, int]    # role -> trials that ran to an end in this run
    wall_s: float


def execute(study: optuna.Study, plan: SearchPlan, data: ProxyData, fixed_jobs: list[FixedJob],
            candidates: int, on_event: Callable[[str, Job, dict], None]) -> SearchOutcome:
    """Train fixed jobs, then sampler candidates, as Ray Tune trials. Ctrl-C stops cleanly:
    trials still running are recorded as interrupted (and candidates queued again)."""
    started = time.monotonic()
    counted = (Role.CANDIDATE, Role.BASELINE, Role.REEVAL)
    before = {role: len(study_lib.ended_trials(study, role)) for role in counted}
    interrupted = False
    if fixed_jobs or candidates:
        with ray_session(plan):
            interrupted = run_tuner(study, plan, data, fixed_jobs, candidates, on_event)
    trained = {role: len(study_lib.ended_trials(study, role)) - before[role] for role in counted}
    return SearchOutcome(interrupted, [], trained, time.monotonic() - started)


def trial_name(trial: Any) -> str:
    """Ray's folder and display name of a trial: the Optuna number and what it is."""
    label = str(trial.config.get("label", "")).replace("#", "").replace(" ", "-")
    return f"trial-{trial.config.get('optuna_trial', 'x')}-{trial.config.get('role', '')}" + (
        f"-{label}" if trial.config.get("role") != Role.CANDIDATE else "")


def run_tuner(study: optuna.Study, plan: SearchPlan, data: ProxyData,
              fixed_jobs: list[FixedJob], candidates: int,
              on_event: Callable[[str, Job, dict], None]) -> bool:
    """One Tune experiment over the searcher. Returns whether it was interrupted."""
    quiet_trial_errors()
    concurrency = plan.max_concurrent or cluster_concurrency(plan)
    searcher = RampSearcher(study, plan, fixed_jobs, candidates, on_event)
    trainable = tune.with_parameters(
        train_trial, data=data, base=plan.space.base.to_dict(), proxy=plan.proxy.to_dict(),
        threads=max(1, int(plan.cpus_per_trial)))
    resources = {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=make_scheduler(plan),
                                    num_samples=-1, reuse_actors=True,
                                    max_concurrent_trials=concurrency, metric=searcher.metric,
                                    mode=searcher.mode,
                                    trial_name_creator=trial_name,
                                    trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(
            storage_path=str((plan.location.folder / "ray").resolve()),
            name=time.strftime("tune-%Y%m%d-%H%M%S"), verbose=0,
            failure_config=tune.FailureConfig(max_failures=0)),
    )
    interrupted = False
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    except Exception:
        if searcher.storage_fault is None:
            raise
        # Nothing more can be written; Ray stops the running trainings on the way out.
        raise StorageFault(searcher.storage_fault, plan.location.storage_url) from None
    # Trials Tune did not see to an end: recorded as interrupted, candidates queued again.
    interrupted = interrupted or bool(searcher.live)
    for trial, _job in list(searcher.live.values()):
        study_lib.mark_interrupted(study, study._storage.get_trial(trial._trial_id))
    searcher.live.clear()
    return interrupted


class TrialErrorFilter(logging.Filter):
    """Drops Tune's traceback of a trial whose worker died: the progress line says so, the
    study records it, and the trial's error file under ray/ keeps the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Trial task failed", "Trials did not complete"))


def quiet_trial_errors() -> None:
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TrialErrorFilter) for f in logger.filters):
            logger.addFilter(TrialErrorFilter())


def make_scheduler(plan: SearchPlan) -> Any:
    if plan.settings.scheduler == "none":
        return None
    # Stops weak trials between epochs; they enter the study as PRUNED, never ranked on
    # their truncated score.
    return tune.schedulers.ASHAScheduler(time_attr="epoch", max_t=plan.proxy.epochs,
                         grace_period=max(1, plan.proxy.epochs // 4), reduction_factor=2)
