"""Seed-paired statistics: comparing ramps trained with the same seeds.

Within a study, one seed fixes a trial's initial weights, batch order and augmentation for
every ramp, and a seed that happens to be lucky is lucky for most ramps (measured: seed
effects of +0.6 / -0.5 / -0.1 top-1 shared across ramps). Comparing two ramps seed by seed
removes that shared effect; an unpaired test (Welch's) leaves it in the noise and calls real
differences ties. These are plain functions of numbers keyed by seed, tested on hand-made
data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

VERDICTS = ("better", "worse", "tied")
LEVEL = 0.95
MAX_SEEDS_TO_SEPARATE = 1000   # beyond this a difference is called inseparable


@dataclass(frozen=True)
class PairedDifference:
    """a − b over the seeds both have, in the score's own units, with its interval.

    ``verdict`` is from a's side: 'better' or 'worse' when the interval excludes 0 (in the
    direction the score is better), else 'tied'. ``seeds_to_separate`` is how many paired
    seeds the observed mean difference and spread would need for the interval to exclude 0
    (None when it already does, or when the difference is 0 or the spread unknown)."""

    seeds: int
    mean: float
    low: float
    high: float
    p: float
    verdict: str
    seeds_to_separate: int | None


def common_seeds(*runs: Mapping[int, float]) -> list[int]:
    """Seeds present in every mapping, in order."""
    if not runs:
        return []
    shared = set(runs[0]).intersection(*runs[1:])
    return sorted(shared)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], maximize: bool,
                      level: float = LEVEL) -> PairedDifference:
    """Paired t-interval of a − b over their common seeds (scores keyed by seed)."""
    seeds = common_seeds(a, b)
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=float)
    n = diffs.size
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan, "tied", None)
    mean = float(diffs.mean())
    if n < 2:
        return PairedDifference(1, mean, math.nan, math.nan, math.nan, "tied", None)
    sd = float(diffs.std(ddof=1))
    if sd == 0:
        # Identical differences on every seed: no noise left, the sign decides.
        verdict = "tied" if mean == 0 else _verdict(mean, maximize)
        p = 1.0 if mean == 0 else 0.0
        return PairedDifference(n, mean, mean, mean, p, verdict, None)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    separated = low > 0 or high < 0
    verdict = _verdict(mean, maximize) if separated else "tied"
    return PairedDifference(n, mean, low, high, p, verdict,
                            None if separated else seeds_to_separate(mean, sd, level))


def _verdict(mean: float, maximize: bool) -> str:
    return "better" if (mean > 0) == maximize else "worse"


def seeds_to_separate(mean: float, sd: float, level: float = LEVEL) -> int | None:
    """The smallest n with t(n−1)·sd/√n < |mean|: seeds a paired comparison with this mean
    difference and spread would need. None when there is no difference to find, or when it
    would take more than MAX_SEEDS_TO_SEPARATE."""
    if mean == 0 or not math.isfinite(mean) or not math.isfinite(sd) or sd <= 0:
        return None
    # Start from the normal approximation and walk up: t shrinks towards z as n grows.
    z = float(stats.norm.ppf(0.5 + level / 2))
    n = max(2, math.ceil((z * sd / abs(mean)) ** 2))
    while n <= MAX_SEEDS_TO_SEPARATE:
        if float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n) < abs(mean):
            return n
        n += 1
    return None


@dataclass(frozen=True)
class BlockedNoise:
    """A two-way (ramp + seed) analysis of ramps trained with the same seeds.

    Only seeds that every ramp has are used (complete blocks). ``noise_std`` is the residual
    standard deviation once both the ramp and the seed effects are removed; ``spread_std`` is
    the standard deviation of the ramp means over those seeds (the seed effects cancel in it,
    since every mean covers the same seeds); ``seed_effects`` is each seed's mean departure
    from the grand mean."""

    ramps: int
    seeds: int
    noise_std: float
    spread_std: float
    ramps_differ_p: float
    seed_effects: dict[int, float]

    @property
    def reliability(self) -> float:
        """1 − noise²/(S·spread²): the share of the variance of the ramp means that is not
        seed noise, when the ramps are compared seed by seed."""
        if not self.spread_std > 0 or not math.isfinite(self.noise_std) or self.seeds < 1:
            return math.nan
        return max(0.0, 1.0 - self.noise_std ** 2 / (self.seeds * self.spread_std ** 2))


def seed_blocked(scores: Mapping[str, Mapping[int, float]]) -> BlockedNoise:
    """Two-way analysis of variance without interaction over the complete seed blocks."""
    labels = list(scores)
    seeds = common_seeds(*scores.values()) if labels else []
    r, s = len(labels), len(seeds)
    if r < 2 or s < 1:
        return BlockedNoise(r, s, math.nan, math.nan, math.nan, {})
    table = np.array([[scores[label][seed] for seed in seeds] for label in labels], dtype=float)
    grand = table.mean()
    ramp_means = table.mean(axis=1)
    seed_means = table.mean(axis=0)
    spread = float(np.std(ramp_means, ddof=1))
    effects = {seed: float(m - grand) for seed, m in zip(seeds, seed_means)}
    if s < 2:
        return BlockedNoise(r, s, math.nan, spread, math.nan, effects)
    residual = table - ramp_means[:, None] - seed_means[None, :] + grand
    freedom = (r - 1) * (s - 1)
    residual_ms = float((residual ** 2).sum()) / freedom
    ramp_ms = s * float(((ramp_means - grand) ** 2).sum()) / (r - 1)
    noise = math.sqrt(residual_ms)
    if residual_ms > 0:
        p = float(stats.f.sf(ramp_ms / residual_ms, r - 1, freedom))
    else:
        p = 0.0 if ramp_ms > 0 else math.nan
    return BlockedNoise(r, s, noise, spread, p, effects)
