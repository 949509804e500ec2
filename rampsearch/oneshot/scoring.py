"""Scoring ramps by their subnets with inherited weights, and writing the scores into a study.

Every ramp is evaluated on the same validation images, normalised once (common random
numbers: two ramps' scores differ by the ramps, not by the images), by the engine's own
``evaluate``, so a supernet score is defined as a stand-alone trial's final score is. The
subnet runs inside the supernet (``set_ramp``), which computes what the extracted
stand-alone model computes.

Scores enter an Optuna study as candidate trials in the format ``rampsearch run`` writes,
with ``score_source = supernet``, so ``rank``, ``report``, ``export`` and the dashboard read
them as they read stand-alone trials.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
import torch
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

import iformer
from iformer.supernet import IFormerSupernet
from search_spaces import CONSTRAINT_KEY, SearchSpace

from ..attributes import Attr, Role, Status, StudyAttr
from ..data import ProxyData
from ..errors import UserError
from ..training.engine import Batch, TrainingPlan, evaluate
from ..training.proxy import DeviceImages, ProxySettings, cpu_threads, fit_data, normalize
from .settings import SupernetSettings

if TYPE_CHECKING:
    from ..study.plan import SearchPlan

SUPERNET = "supernet"  # the Attr.SCORE_SOURCE of a score read off a supernet's subnet

Ramp = tuple[int, ...]


@dataclass(frozen=True)
class RampScore:
    """A ramp's subnet on the fixed validation images: cross-entropy, top-1/top-5 in %,
    and the process CPU-seconds its evaluation took."""

    ramp: Ramp
    val_loss: float
    top1: float
    top5: float
    cpu_s: float
    images: int


def validation_batches(data: ProxyData, proxy: ProxySettings, settings: SupernetSettings,
                       device: torch.device) -> list[Batch]:
    """The fixed validation images every ramp is scored on, normalised once: the first
    ``score_samples`` of the proxy's (all when 0), in batches of twice the training batch
    (as the proxy evaluates)."""
    data = fit_data(data, proxy)
    val = DeviceImages(data.val_images, data.val_labels, device)
    count = settings.score_samples or val.count
    if count > val.count:
        raise UserError(f"supernet setting score_samples is {count} but the proxy has "
                        f"{val.count} validation images; use at most {val.count}, or 0 for all.")
    size = 2 * proxy.batch_size
    return [(normalize(val.images[start:min(start + size, count)], val.mean, val.inv_std),
             val.labels[start:min(start + size, count)]) for start in range(0, count, size)]


def score_ramps(supernet: IFormerSupernet, ramps: Iterable[Sequence[int]],
                batches: Sequence[Batch],
                cache: MutableMapping[Ramp, RampScore] | None = None,
                num_threads: int | None = None) -> list[RampScore]:
    """The score of each ramp's subnet with the supernet's weights, in order. ``cache``
    (a dict kept by the caller for one trained supernet) answers ramps scored before without
    evaluating them again, and receives the new ones."""
    device = supernet.pos_embed1.device
    # Only what engine.evaluate reads of a plan: the batches, the device, the precision.
    plan = TrainingPlan(model=supernet, optimizer=None, train_loss=None,
                        train_batches=lambda epoch: (), val_batches=lambda: batches, epochs=0,
                        device=device,
                        autocast_dtype=torch.bfloat16 if device.type == "cuda" else None)
    images = sum(int(labels.shape[0]) for _, labels in batches)
    cache = {} if cache is None else cache
    scores = []
    with cpu_threads(num_threads):
        for ramp in ramps:
            key = tuple(int(a) for a in ramp)
            if key not in cache:
                started = time.process_time()
                supernet.set_ramp(key)
                val_loss, top1, top5 = evaluate(plan, supernet)
                cache[key] = RampScore(key, val_loss, top1, top5,
                                       time.process_time() - started, images)
            scores.append(cache[key])
    return scores


# ------------------------------------------------------------------------------- study
def record_scores(study: optuna.Study, plan: SearchPlan, scores: Sequence[RampScore],
                  settings: SupernetSettings, epochs_trained: int) -> list[int]:
    """Add one completed candidate trial per score to ``study``, as ``rampsearch run``
    records a trained candidate (the space's parameters when it can spell the ramp, the
    ramp's FLOPs, params and constraint, the proxy settings, both scores), plus
    ``score_source = supernet``; the study's objective (and FLOPs, for two objectives) is
    its value. Written in one batch; returns the trial numbers."""
    objective = plan.objective.key
    trials = []
    for score in scores:
        ramp = list(score.ramp)
        flops = plan.space.flops(ramp, plan.budget.img_size)
        config = plan.space.base.with_ramp(ramp)
        params, distributions = space_params(plan.space, ramp)
        attrs = {
            Attr.ROLE: Role.CANDIDATE, Attr.RAMP: ramp, Attr.FLOPS: flops,
            Attr.HIGH_RATIOS: [round(r, 4) for r in config.high_ratios()],
            Attr.PARAMS: iformer.count_params(config),
            Attr.WITHIN_BUDGET: flops <= plan.budget.flops, Attr.PROXY: plan.proxy.to_dict(),
            Attr.SCORE_SOURCE: SUPERNET, Attr.STATUS: Status.COMPLETED,
            Attr.END_REASON: Status.COMPLETED, Attr.EPOCHS_REACHED: epochs_trained,
            Attr.WALL_S: round(score.cpu_s, 3),
            Attr.TOP1: score.top1, Attr.TOP5: score.top5, Attr.VAL_LOSS: score.val_loss,
        }
        value = attrs[objective]
        finite = math.isfinite(value)
        values = [value] + ([flops / 1e9] if len(study.directions) > 1 else [])
        trials.append(optuna.trial.create_trial(
            state=TrialState.COMPLETE if finite else TrialState.FAIL,
            values=values if finite else None, params=params, distributions=distributions,
            user_attrs={str(key): val for key, val in attrs.items()},
            constraints={CONSTRAINT_KEY: float(flops - plan.budget.flops)}))
    first = len(study.get_trials(deepcopy=False))
    study.add_trials(trials)
    study.set_user_attr(StudyAttr.SUPERNET, settings.to_dict())
    return list(range(first, first + len(trials)))


class RecordingParams:
    """Answers a space's parameters from given values and records each one's range, as an
    Optuna trial would record its distribution."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values
        self.distributions: dict[str, BaseDistribution] = {}

    def suggest_int(self, name: str, low: int, high: int) -> int:
        self.distributions[name] = IntDistribution(low, high)
        return int(self.values[name])

    def suggest_float(self, name: str, low: float, high: float, *,
                      step: float | None = None) -> float:
        self.distributions[name] = FloatDistribution(low, high, step=step)
        return float(self.values[name])


def space_params(space: SearchSpace, ramp: Sequence[int]
                 ) -> tuple[dict[str, float], dict[str, BaseDistribution]]:
    """The parameters that spell ``ramp`` in ``space`` and their distributions as
    ``space.suggest`` defines them; empty when the space cannot spell it."""
    params = space.encode(ramp)
    if params is None:
        return {}, {}
    source = RecordingParams(params)
    if list(space.suggest(source)) != list(ramp):  # the encoder and decoder disagree
        raise RuntimeError(f"space {space.name} encodes {list(ramp)} but decodes otherwise")
    return {name: params[name] for name in source.distributions}, source.distributions
