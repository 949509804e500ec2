"""Scoring ramps by their subnets with inherited weights, and writing the scores into a study.

Every ramp is evaluated on the same validation images, normalised once (common random
numbers: two ramps' scores differ by the ramps, not by the images), by the engine's own
``evaluate``, so a supernet score is defined as a stand-alone trial's final score is. The
subnet runs inside the supernet (``set_ramp``), which computes what the extracted
stand-alone model computes.

Scores enter a study through :mod:`.search` as ``rampsearch run`` records a trained
candidate, with ``score_source = supernet``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass

import torch

from iformer.supernet import IFormerSupernet

from ..data import ProxyData
from ..training.engine import Batch, TrainingPlan, evaluate
from ..training.proxy import DeviceImages, ProxySettings, cpu_threads, fit_data, normalize
from .settings import SupernetSettings

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
    ``score_samples`` of the proxy's (all when 0, or when the proxy has fewer), in batches
    of twice the training batch (as the proxy evaluates)."""
    data = fit_data(data, proxy)
    val = DeviceImages(data.val_images, data.val_labels, device)
    count = min(settings.score_samples or val.count, val.count)
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
