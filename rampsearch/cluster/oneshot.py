"""The one-shot search on Ray: the supernet trains once in a Ray actor (with a checkpoint
beside the study after every epoch), then actors holding its weights score the ramps the
study's sampler proposes, a few at a time, so the sampler learns from every score before
its next proposal. The study stays the only state that survives a run: ``--resume``
continues the supernet from its checkpoint and the scoring where the study stopped.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import ray

from ..attributes import Attr, Role, Status
from ..data import ProxyData
from ..errors import UserError
from ..oneshot import SupernetSettings, score_ramps, train_supernet, validation_batches
from ..oneshot.scoring import RampScore
from ..oneshot.search import (
    SamplingCopy,
    ScoreJob,
    known_scores,
    score_jobs,
    tell_duplicate,
    tell_score,
)
from ..reporting.progress import format_duration
from ..study import storage as study_lib
from ..study.plan import SearchPlan
from ..training.proxy import ProxySettings
from .connection import cluster_concurrency
from .searcher import SearchOutcome

CHECKPOINT = "supernet.pt"  # beside the study: results/<study>/supernet.pt
RAMPS_PER_CALL = 4          # ramps an actor scores per call: the sampler waits for no more
POLL_S = 2.0                # how often the driver asks the training actor for its epochs
STATUS_EVERY_S = 10.0       # a scoring status line at most this often
# A Ray actor lost under a call (its process killed, its node gone, unresponsive).
ACTOR_LOST = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)
FLUSH_EVERY_S = 5.0         # scores told are written into the stored study at least this often


class SupernetWorker:
    """A Ray actor that trains a supernet or holds a trained one's weights, and scores ramps
    by its subnets on the proxy's fixed validation images (with a cache)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.epochs: list[dict[str, Any]] = []
        self.supernet: Any = None
        self.batches: list[Any] = []
        self.scoring: tuple[Any, ...] = ()  # (data, proxy, supernet settings) to score with
        self.cache: dict[tuple[int, ...], RampScore] = {}

    def train(self, space: Any, budget: Any, data: ProxyData, proxy: dict[str, Any],
              settings: dict[str, Any], checkpoint: str | None) -> dict[str, Any]:
        """Train (or continue from ``checkpoint``) and keep the supernet for scoring."""
        proxy_settings = ProxySettings.from_dict(proxy)
        run = train_supernet(space.base, space, budget, data, proxy_settings,
                             SupernetSettings.from_dict(settings),
                             checkpoint=Path(checkpoint) if checkpoint else None,
                             on_epoch=lambda metrics: self.epochs.append(metrics.to_dict()),
                             num_threads=self.threads)
        self.supernet = run.supernet
        self.scoring = (data, proxy_settings, SupernetSettings.from_dict(settings))
        return {"status": run.result.status, "reason": run.result.reason,
                "cpu_s": run.total_cpu_s, "resumed_from_epoch": run.resumed_from_epoch}

    def progress(self) -> list[dict[str, Any]]:
        return list(self.epochs)

    def weights(self) -> dict[str, Any]:
        return {key: value.detach().cpu() for key, value in self.supernet.state_dict().items()}

    def load(self, space: Any, data: ProxyData, proxy: dict[str, Any],
             settings: dict[str, Any], weights: dict[str, Any]) -> None:
        """Hold a trained supernet of ``space``'s base at the proxy's width."""
        import torch

        from iformer.supernet import IFormerSupernet

        from ..training.proxy import fit_data, proxy_model_config

        proxy_settings = ProxySettings.from_dict(proxy)
        config = proxy_model_config(space.base, proxy_settings,
                                    fit_data(data, proxy_settings).num_classes)
        self.supernet = IFormerSupernet(config).to(memory_format=torch.channels_last)
        self.supernet.load_state_dict(weights)
        self.scoring = (data, proxy_settings, SupernetSettings.from_dict(settings))

    def score(self, ramps: Sequence[Sequence[int]]) -> list[RampScore]:
        if not self.batches:  # the fixed validation images, built by the first call only
            self.supernet.eval()
            self.batches = validation_batches(*self.scoring, self.supernet.pos_embed1.device)
        return score_ramps(self.supernet, ramps, self.batches, self.cache,
                           num_threads=self.threads)


# ---------------------------------------------------------------------------- the driver
def get(ref: Any) -> Any:
    """``ray.get``, but a UserError raised in the actor (e.g. an unreadable or foreign
    checkpoint) is raised as itself: one paragraph for the user, not Ray's traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, UserError):
            raise exc.cause from None
        raise


def oneshot_study(study: optuna.Study, plan: SearchPlan, data: ProxyData) -> SearchOutcome:
    """Train the study's supernet (or continue it), then score what the study still lacks.
    Ctrl-C keeps the supernet's last epoch and every score told; proposals still being
    scored are never written, and the next run proposes anew."""
    started = time.monotonic()
    settings = SupernetSettings.from_dict(plan.settings.supernet or {})
    recovered = study_lib.recover_interrupted(study)
    before = len(study_lib.ended_trials(study, Role.CANDIDATE))
    data_ref = ray.put(data)
    try:
        weights = train_on_ray(plan, data_ref, settings, plan.location.folder / CHECKPOINT)
        interrupted = score_on_ray(study, plan, data_ref, weights, settings)
    except KeyboardInterrupt:
        interrupted = True
    trained = {Role.CANDIDATE: len(study_lib.ended_trials(study, Role.CANDIDATE)) - before}
    return SearchOutcome(interrupted, recovered, trained, time.monotonic() - started)


def training_cpus(plan: SearchPlan) -> int:
    """CPUs (and torch threads) the supernet trains with: what the search's trials would
    use together, within the largest node."""
    wanted = plan.cpus_per_trial * (plan.max_concurrent or cluster_concurrency(plan))
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]),
                  default=1)
    return max(1, int(min(wanted, largest)))


def train_on_ray(plan: SearchPlan, data_ref: Any, settings: SupernetSettings,
                 checkpoint: Path) -> Any:
    """Train the supernet in an actor, printing each epoch; the trained weights' object
    reference. A run that stops early is a UserError (its last epoch is kept)."""
    cpus = training_cpus(plan)
    worker = ray.remote(SupernetWorker).options(
        num_cpus=cpus, num_gpus=plan.gpus_per_trial, max_concurrency=2).remote(cpus)
    epochs = settings.epochs
    print(f"\nsupernet   {settings.strategy} sampling, {epochs} epochs of the proxy's batches, "
          f"{cpus} CPU" + (f" + {plan.gpus_per_trial:g} GPU" if plan.gpus_per_trial else "")
          + f"; checkpoint {checkpoint}", flush=True)
    started = time.monotonic()
    pending = worker.train.remote(plan.space, plan.budget, data_ref, plan.proxy.to_dict(),
                                  settings.to_dict(), str(checkpoint))
    shown = 0
    while True:
        done, _ = ray.wait([pending], timeout=POLL_S)
        for line in epoch_lines(ray.get(worker.progress.remote())[shown:], shown, epochs,
                                started):
            shown += 1
            print(line, flush=True)
        if done:
            break
    outcome = get(pending)
    if outcome["status"] != Status.COMPLETED:
        raise UserError(f"the supernet's training ended {outcome['status']}: "
                        f"{outcome['reason']}; its last good epoch is kept in {checkpoint}. "
                        f"Lower the proxy's lr (e.g. --lr 1e-3) and start a new study.")
    if outcome["resumed_from_epoch"] >= epochs:
        print(f"supernet   trained before ({epochs} epochs, {checkpoint})", flush=True)
    weights = worker.weights.remote()
    ray.get(weights)  # the weights now live in the object store, apart from the actor
    ray.kill(worker)  # its CPUs go to the scorers
    return weights


def epoch_lines(epochs: Sequence[dict[str, Any]], shown: int, total: int,
                started: float) -> Iterator[str]:
    """One line per supernet epoch: the paper's ramp's subnet on the validation images."""
    for index, metrics in enumerate(epochs, start=shown + 1):
        elapsed = time.monotonic() - started
        left = elapsed / index * (total - metrics["epoch"]) if index else 0.0
        yield (f"supernet   epoch {metrics['epoch']}/{total}  train loss "
               f"{metrics['train_loss']:.4f}  paper ramp: val loss {metrics['val_loss']:.4f} "
               f"top-1 {metrics['top1']:.2f}%  elapsed {format_duration(elapsed)}  left "
               f"{format_duration(left)}")


def score_on_ray(study: optuna.Study, plan: SearchPlan, data_ref: Any, weights: Any,
                 settings: SupernetSettings) -> bool:
    """Score the trials the study still wants on actors holding ``weights``, each ramp once.
    Returns whether it was interrupted."""
    concurrency = plan.max_concurrent or cluster_concurrency(plan)
    threads = max(1, int(plan.cpus_per_trial))

    def new_worker() -> Any:
        worker = ray.remote(SupernetWorker).options(
            num_cpus=plan.cpus_per_trial, num_gpus=plan.gpus_per_trial).remote(threads)
        worker.load.remote(plan.space, data_ref, plan.proxy.to_dict(), settings.to_dict(),
                           weights)
        return worker

    workers = [new_worker() for _ in range(concurrency)]
    lost = 0
    sampling = SamplingCopy(study)  # proposals without a storage write per parameter
    proposals = sampling.memory
    known = known_scores(proposals)
    scores = {ramp: score for ramp, (_, score) in known.items()}
    first = {ramp: number for ramp, (number, _) in known.items()}  # the trial that scored it
    seen = {ramp for ramp, (number, _) in known.items()
            if proposals.trials[number].user_attrs.get(Attr.ROLE) == Role.CANDIDATE}
    jobs = score_jobs(proposals, plan, seen)
    progress = ScoringProgress(plan, len(scores))
    pending: dict[Any, tuple[Any, list[ScoreJob]]] = {}
    flushed = time.monotonic()

    def tell(job: ScoreJob, score: RampScore) -> None:
        duplicate_of = first.setdefault(job.ramp, job.trial.number)
        if duplicate_of != job.trial.number:
            tell_duplicate(proposals, job, duplicate_of)
        else:
            tell_score(proposals, job, score, plan.objective.key, settings.epochs)
        progress.told(job, score, new=duplicate_of == job.trial.number)

    def submit(worker: Any) -> None:
        batch: list[ScoreJob] = []
        for job in jobs:
            if job.role == Role.CANDIDATE:
                seen.add(job.ramp)
            if job.ramp in scores:  # scored before: the same score, no evaluation
                tell(job, scores[job.ramp])
                continue
            batch.append(job)
            if len(batch) == RAMPS_PER_CALL:
                break
        if batch:
            pending[worker.score.remote([job.ramp for job in batch])] = (worker, batch)

    interrupted = False
    try:
        for worker in workers:
            submit(worker)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            worker, batch = pending.pop(ready[0])
            try:
                results = ray.get(ready[0])
            except ACTOR_LOST as exc:  # the infrastructure's failure: a new actor, same ramps
                lost += 1
                if lost > plan.worker_retries:
                    raise UserError(
                        f"the Ray actors scoring ramps were lost {lost} times (the last: "
                        f"{type(exc).__name__}); every score told is kept in the study; "
                        f"continue with `rampsearch run --resume --study "
                        f"{plan.location.name}`.") from None
                workers.remove(worker)
                workers.append(new_worker())
                pending[workers[-1].score.remote([job.ramp for job in batch])] = (
                    workers[-1], batch)
                continue
            for job, score in zip(batch, results, strict=True):
                scores.setdefault(job.ramp, score)
                tell(job, score)
            submit(worker)
            if time.monotonic() - flushed >= FLUSH_EVERY_S:
                sampling.flush()
                flushed = time.monotonic()
    except KeyboardInterrupt:  # asked but not told: never written, asked anew next run
        interrupted = True
    finally:
        sampling.flush()
        for worker in workers:
            ray.kill(worker)
    progress.finish()
    return interrupted


@dataclasses.dataclass
class ScoringProgress:
    """Status lines of the scoring: trials told, distinct ramps scored, the best so far and
    the time left, at most every STATUS_EVERY_S seconds (and at the end)."""

    plan: SearchPlan
    distinct: int
    told_trials: int = 0
    new: int = 0
    best: tuple[float, str, tuple[int, ...]] | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    last_line: float = dataclasses.field(default_factory=time.monotonic)
    on_line: Callable[[str], None] = print

    def told(self, job: ScoreJob, score: RampScore, new: bool) -> None:
        self.told_trials += 1
        self.new += new
        self.distinct += new
        value = getattr(score, self.plan.objective.key)
        if job.role == Role.CANDIDATE and math.isfinite(value) and (
                self.best is None or self.plan.objective.better(value, self.best[0])):
            self.best = (value, job.label, job.ramp)
        if time.monotonic() - self.last_line >= STATUS_EVERY_S:
            self.line()

    def line(self) -> None:
        from ..ranking.leaderboard import compact_ramp

        self.last_line = time.monotonic()
        elapsed = self.last_line - self.started
        rate = self.new / elapsed if elapsed > 0 else 0.0
        wanted = self.plan.trials + len(self.plan.space.baselines())
        left = max(0, wanted - self.distinct)
        best = (f"best {self.plan.objective.format(self.best[0])} {self.plan.objective.key} "
                f"({compact_ramp(list(self.best[2]), self.plan.space.base.depths)})"
                if self.best else "best -")
        self.on_line(f"scored     {self.distinct} distinct ramps in the study ({self.told_trials} "
                     f"proposals this run)  {rate:.1f} ramps/s  {best}  elapsed "
                     f"{format_duration(elapsed)}  left <= "
                     f"{format_duration(left / rate) if rate else '?'}")

    def finish(self) -> None:
        self.line()


# ----------------------------------------------------------------------------- fidelity
def fidelity_supernets(jobs: Sequence[Any], plan: SearchPlan, data: ProxyData,
                       on_done: Callable[[Any, list[RampScore], float], None]) -> bool:
    """Train the supernet of each fidelity job (``rampsearch.fidelity.supernet``) in an
    actor of ``plan.cpus_per_trial`` CPUs, as many at once as the cluster allows, and score
    the job's ramps with it; ``on_done(job, scores, training CPU-seconds)`` as each ends.
    Returns whether it was interrupted (finished jobs are kept by ``on_done``; a supernet
    interrupted in training continues from its checkpoint next time)."""
    concurrency = plan.max_concurrent or cluster_concurrency(plan)
    threads = max(1, int(plan.cpus_per_trial))
    data_ref = ray.put(data)
    waiting = list(jobs)
    running: dict[Any, tuple[Any, Any, Any, float]] = {}

    def startable() -> bool:
        busy = {job.checkpoint for job, _, _, _ in running.values()}
        return any(job.checkpoint not in busy for job in waiting)

    def start() -> None:
        # Settings that differ only in scoring share a checkpoint: one trains it, the other
        # waits and then finds it trained.
        busy = {job.checkpoint for job, _, _, _ in running.values()}
        job = waiting.pop(next(i for i, j in enumerate(waiting) if j.checkpoint not in busy))
        worker = ray.remote(SupernetWorker).options(
            num_cpus=plan.cpus_per_trial, num_gpus=plan.gpus_per_trial).remote(threads)
        job.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        trained = worker.train.remote(plan.space, plan.budget, data_ref, job.proxy.to_dict(),
                                      job.settings.to_dict(), str(job.checkpoint))
        scored = worker.score.remote(list(job.ramps.values()))
        running[scored] = (job, worker, trained, time.monotonic())

    try:
        while waiting or running:
            while len(running) < concurrency and startable():
                start()
            ready, _ = ray.wait(list(running), num_returns=1)
            job, worker, trained, began = running.pop(ready[0])
            try:
                outcome, scores = get(trained), get(ready[0])
            except ACTOR_LOST as exc:  # its last epoch is in the checkpoint: next run goes on
                print(f"{job.name} seed {job.seed}: its Ray actor was lost "
                      f"({type(exc).__name__}); run the same command again to finish it from "
                      f"its checkpoint", flush=True)
                continue
            finally:
                ray.kill(worker)
            if outcome["status"] != Status.COMPLETED:
                print(f"{job.name} s{job.seed}: training ended {outcome['status']} "
                      f"({outcome['reason']}); not scored", flush=True)
                continue
            on_done(job, scores, outcome["cpu_s"])
            cpu = sum(score.cpu_s for score in scores) / max(1, len(scores))
            print(f"{job.name:<10} seed {job.seed}: {job.settings.strategy}, "
                  f"{job.settings.epochs} epochs in {format_duration(outcome['cpu_s'])} CPU "
                  f"(from epoch {outcome['resumed_from_epoch']}), {len(scores)} ramps scored at "
                  f"{cpu:.2f} CPU-s each  [{format_duration(time.monotonic() - began)} wall]",
                  flush=True)
    except KeyboardInterrupt:
        return True
    finally:
        for _, worker, _, _ in running.values():
            ray.kill(worker)
    return False
