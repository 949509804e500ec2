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
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.search import Searcher

from iformer import IFormerConfig

from . import study as study_lib
from .bookkeeping import FixedJob, Job, ask_feasible, new_fixed_trial, tell_outcome, work_left
from .data import ProxyData
from .errors import StorageFault, UserError, storage_error_types
from .plan import SearchPlan
from .proxy import ProxySettings
from .states import Attr, Role, Status

RAY_CONNECT_TIMEOUT_S = 10.0  # for --ray-address: Ray itself retries an absent head for minutes


# --------------------------------------------------------------------------- trial worker
def train_trial(config: dict[str, Any], data: ProxyData, base: dict[str, Any],
                proxy: dict[str, Any], threads: int) -> None:
    """Ray Tune function trainable: trains one ramp and reports after every epoch.

    Exceptions are caught and reported as a final result, so the driver can record the
    reason instead of a bare "error".
    """
    from .proxy import train_proxy

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


def start_ray(plan: SearchPlan) -> bool:
    """Connect to the cluster at plan.ray_address, or start a local Ray instance, and check
    that a trial's resource request fits a node (Ray would wait forever for one that does
    not). Raises UserError, with Ray shut down, if not. Returns whether this call started it
    (False: Ray was already up, and its owner shuts it down)."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level="ERROR",
                                  log_to_driver=False)
    # Ray's driver installs its own fatal-signal handler for SIGTERM; the CLI's (handled as
    # Ctrl-C) is put back after ray.init.
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if plan.ray_address:
            check_reachable(plan.ray_address, RAY_CONNECT_TIMEOUT_S)
            # Local workers inherit the driver's environment; a cluster's get it this way.
            env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
            ray.init(address=plan.ray_address, runtime_env={"env_vars": env}, **kwargs)
        else:
            ray.init(address="local", **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot connect to the Ray cluster at {plan.ray_address or 'local'}: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
                        + (TOKEN_HINT if asks_for_token(exc) else
                           "Check the address (HOST:PORT of the head, 6379 by default) and "
                           "that `ray start --head` runs there, or drop --ray-address and "
                           "RAY_ADDRESS to start a local Ray.")) from None
    finally:
        if callable(sigterm):
            signal.signal(signal.SIGTERM, sigterm)
    try:
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        check_cluster(plan.cpus_per_trial, plan.gpus_per_trial, nodes,
                      plan.ray_address or "local Ray on this machine")
    except UserError:
        ray.shutdown()
        raise
    return True


# `ray start` turns Ray's token authentication on by default (Ray 2.59 and later); a driver
# joining such a cluster must be told so, or Ray refuses it after retrying for a while.
TOKEN_HINT = ("The cluster asks for its authentication token (on by default for `ray start` "
              "since Ray 2.59): set RAY_AUTH_MODE=token, and the cluster's token in "
              "RAY_AUTH_TOKEN or ~/.ray/auth_token (`ray get-auth-token` prints it on the "
              "head), then run the command again.")


def asks_for_token(exc: BaseException) -> bool:
    """Whether Ray refused a connection for want of the cluster's token (the reason is in
    the exception Ray chained to its ConnectionError)."""
    text = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
    return "token" in text.lower() and "auth" in text.lower()


@contextlib.contextmanager
def ray_session(plan: SearchPlan) -> Iterator[None]:
    """Ray kept up across several ``execute`` calls (a search and its race), so it starts
    once; shut down (a local instance) or disconnected (a cluster) on every exit path."""
    started = start_ray(plan)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def check_reachable(address: str, timeout: float) -> None:
    """Fail within ``timeout`` seconds when nothing answers at a HOST:PORT Ray address (Ray
    itself retries for minutes without a word). ``auto`` is resolved by Ray, quickly."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address}: give HOST:PORT of the Ray head node (e.g. "
                        f"10.0.0.5:6379), ray://HOST:10001 or auto.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"nothing answers at --ray-address {address} within {timeout:g} s "
                        f"({exc.strerror or exc}). Check that `ray start --head` runs on {host}, "
                        f"that {port} is its port (6379 by default) and open through any "
                        f"firewall, or drop --ray-address and RAY_ADDRESS to start a local "
                        f"Ray.") from None


def check_cluster(cpus_per_trial: float, gpus_per_trial: float,
                  nodes: list[dict[str, float]], where: str) -> None:
    """Refuse a per-trial request that no node of the cluster (``nodes``: the resources of
    each alive node) can meet, saying what the cluster has and what to pass instead."""
    if any(n.get("CPU", 0.0) >= cpus_per_trial and n.get("GPU", 0.0) >= gpus_per_trial
           for n in nodes):
        return
    cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    fixes = []
    if cpus_per_trial > cpus:
        fixes.append(f"--cpus-per-trial {cpus:g} or less")
    if gpus_per_trial > gpus:
        fixes.append("--gpus-per-trial 0 to train on CPUs" if gpus == 0
                     else f"--gpus-per-trial {gpus:g} or less")
    if not fixes:  # each fits some node, but no node has both
        fixes.append("less of one of them")
    raise UserError(f"no node of the Ray cluster ({where}: {len(nodes)} node(s), the largest "
                    f"with {cpus:g} CPUs and {gpus:g} GPUs) can run a trial that asks for "
                    f"{cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs, and Ray would wait "
                    f"for one forever; pass {' and '.join(fixes)}, or --ray-address of a "
                    f"cluster that has such a node.")


def cluster_concurrency(plan: SearchPlan) -> int:
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, int(cpus // plan.cpus_per_trial))


def run_search(study: optuna.Study, plan: SearchPlan, data: ProxyData,
               on_event: Callable[[str, Job, dict], None]) -> SearchOutcome:
    """Train what the study still lacks: recover interrupted trials, then the baselines not
    yet measured and the candidates still wanted."""
    recovered = study_lib.recover_interrupted(study)
    baselines, candidates = work_left(study, plan)
    outcome = execute(study, plan, data, baselines, candidates, on_event)
    return dataclasses.replace(outcome, recovered=recovered)


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
