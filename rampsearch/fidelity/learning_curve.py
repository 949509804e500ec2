"""A learning-curve score: a proxy training's validation loss, extrapolated to a longer one.

Rankings of ramps can cross with training length (on Fashion-MNIST conv-heavy ramps led
early and late attention later, docs/fidelity.md), so the loss at the end of a short proxy
may rank ramps as the short proxy sees them, not as a long training would. A proxy that
reads the slope of each ramp's curve may see a crossing before it happens.

Each run's curve (validation loss after each epoch) is fitted with a power law in the number
of optimizer steps, loss(t) = b * t^(-c), a straight line in log-log space, by least
squares over its points, and read at the reference's step count. The fit has two parameters
so it is determined by two points and stable with three or four; with one point there is no
slope and the curve has no score. The slope is clamped to be non-negative: a loss that rose
is held at its last value rather than extrapolated upwards without bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

MIN_POINTS = 2


def power_law_fit(steps: np.ndarray, losses: np.ndarray) -> tuple[float, float]:
    """(log b, c) of loss = b * steps^(-c) fitted by least squares in log-log space, c >= 0.
    Every loss must be positive and every step count at least 1."""
    x, y = np.log(np.asarray(steps, dtype=float)), np.log(np.asarray(losses, dtype=float))
    slope, intercept = np.polyfit(x, y, 1)
    if slope > 0:  # a rising loss: hold its last value (no slope), never extrapolate upwards
        return float(y[-1]), 0.0
    return float(intercept), float(-slope)


def extrapolated_loss(curve: Mapping[int, float], steps_per_epoch: int, target_steps: int
                      ) -> float:
    """The loss the power law through ``curve`` ({epoch: validation loss}) predicts after
    ``target_steps`` optimizer steps; NaN with fewer than MIN_POINTS usable points (a
    positive, finite loss)."""
    points = sorted((int(epoch), float(loss)) for epoch, loss in curve.items()
                    if math.isfinite(float(loss)) and float(loss) > 0)
    if len(points) < MIN_POINTS or steps_per_epoch < 1 or target_steps < 1:
        return math.nan
    steps = np.array([epoch * steps_per_epoch for epoch, _ in points], dtype=float)
    log_b, c = power_law_fit(steps, np.array([loss for _, loss in points]))
    return math.exp(log_b - c * math.log(target_steps))
