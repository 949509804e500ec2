"""The learning-curve score: power-law extrapolation of a proxy's validation-loss curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rampsearch.fidelity.learning_curve import extrapolated_loss, power_law_fit


def power_law(b: float, c: float, epochs: int, steps_per_epoch: int) -> dict[int, float]:
    return {e: b * (e * steps_per_epoch) ** -c for e in range(1, epochs + 1)}


@pytest.mark.parametrize("b, c", [(3.0, 0.2), (10.0, 0.5), (1.5, 0.05)])
def test_an_exact_power_law_is_read_at_the_target(b: float, c: float) -> None:
    curve = power_law(b, c, epochs=3, steps_per_epoch=147)
    assert extrapolated_loss(curve, 147, 592) == pytest.approx(b * 592 ** -c, rel=1e-9)
    log_b, slope = power_law_fit(np.array([147.0, 294.0, 441.0]), np.array(list(curve.values())))
    assert (math.exp(log_b), slope) == pytest.approx((b, c), rel=1e-9)


def test_a_steeper_curve_overtakes_one_that_led_at_the_end_of_the_proxy() -> None:
    flat = power_law(2.0, 0.10, epochs=3, steps_per_epoch=100)   # lower after 300 steps
    steep = power_law(3.2, 0.18, epochs=3, steps_per_epoch=100)
    assert flat[3] < steep[3]
    assert extrapolated_loss(steep, 100, 5000) < extrapolated_loss(flat, 100, 5000)


def test_no_slope_no_score_and_a_rising_loss_is_held() -> None:
    assert math.isnan(extrapolated_loss({1: 1.2}, 147, 592))
    assert math.isnan(extrapolated_loss({1: 1.2, 2: float("nan")}, 147, 592))
    assert extrapolated_loss({1: 1.0, 2: 1.1, 3: 1.3}, 147, 5000) == pytest.approx(1.3)
    # Epochs arrive in any order and as strings (a JSON round trip of a study's curve).
    shuffled = {"3": 0.9, "1": 1.2, "2": 1.0}
    ordered = {1: 1.2, 2: 1.0, 3: 0.9}
    assert extrapolated_loss(shuffled, 50, 400) == extrapolated_loss(ordered, 50, 400)
