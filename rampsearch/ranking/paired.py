"""Seed-paired statistics: comparing ramps trained with the same seeds.

Within a study, one seed fixes a trial's initial weights, batch order and augmentation for
every ramp, and a seed that happens to be lucky is lucky for most ramps (measured: seed
effects of +0.6 / -0.5 / -0.1 top-1 shared across ramps). Comparing two ramps seed by seed
removes that shared effect; an unpaired test (Welch's) leaves it in the noise and leaves real
differences not separated. These are plain functions of numbers keyed by seed, tested on hand-made
data.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

# The four words a paired comparison ends in. "better"/"worse": the interval excludes 0;
# "equivalent": an equivalence test (TOST) places the difference within a stated margin;
# "not separated": neither, which says nothing about equivalence.
BETTER, WORSE, EQUIVALENT, NOT_SEPARATED = "better", "worse", "equivalent", "not separated"
VERDICTS = (BETTER, WORSE, EQUIVALENT, NOT_SEPARATED)
LEVEL = 0.95
POWER = 0.8                    # the power a new race is sized for
MAX_SEEDS_TO_SEPARATE = 1000   # beyond this a difference is called inseparable
EQUAL_DIFFERENCES = 1e-9       # a spread below this share of the scores is rounding error


@dataclass(frozen=True)
class PairedDifference:
    """a − b over the seeds both have, in the score's own units, with its interval.

    ``verdict`` is from a's side: 'better' or 'worse' when the interval excludes 0 (in the
    direction the score is better); else 'equivalent' when two one-sided tests place the
    difference within ±``margin`` at the same error rate; else 'not separated'. Differences
    that are equal on every seed (zero spread) are never decisive: with two or three
    quantised scores that happens by chance, and a zero spread is no evidence of no noise.
    ``seeds_to_separate`` is how many paired seeds the observed mean difference and spread
    would need for the interval to exclude 0 (None when it already does, or when the
    difference is 0 or the spread unknown); ``sd`` is the spread of the paired differences."""

    seeds: int
    mean: float
    low: float
    high: float
    p: float
    verdict: str
    seeds_to_separate: int | None
    sd: float = math.nan
    level: float = LEVEL
    margin: float | None = None


@functools.lru_cache(maxsize=4096)
def t_quantile(probability: float, freedom: int) -> float:
    """Student's t quantile, remembered: a simulated race asks the same few thousands of
    times."""
    return float(stats.t.ppf(probability, freedom))


@functools.lru_cache(maxsize=64)
def normal_quantile(probability: float) -> float:
    return float(stats.norm.ppf(probability))


def common_seeds(*runs: Mapping[int, float]) -> list[int]:
    """Seeds present in every mapping, in order."""
    if not runs:
        return []
    shared = set(runs[0]).intersection(*runs[1:])
    return sorted(shared)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], maximize: bool,
                      level: float = LEVEL, margin: float | None = None
                      ) -> PairedDifference:
    """Paired t-interval of a − b over their common seeds (scores keyed by seed), at
    ``level``; with ``margin`` (the score's units), the equivalence test too."""
    seeds = common_seeds(a, b)
    diffs = [float(a[s]) - float(b[s]) for s in seeds]  # a few numbers: plain floats are quicker
    n = len(diffs)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan, NOT_SEPARATED,
                                None, level=level, margin=margin)
    mean = math.fsum(diffs) / n
    if n < 2:
        return PairedDifference(1, mean, math.nan, math.nan, math.nan, NOT_SEPARATED, None,
                                level=level, margin=margin)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    scale = max(max(abs(float(a[s])), abs(float(b[s]))) for s in seeds)
    if not sd > EQUAL_DIFFERENCES * scale:  # equal but for the scores' rounding errors
        # The same difference on every seed: one degree of freedom says nothing about the
        # noise, so this is no evidence either way (and no interval).
        return PairedDifference(n, mean, math.nan, math.nan, math.nan, NOT_SEPARATED, None,
                                sd, level, margin)
    error = sd / math.sqrt(n)
    half = t_quantile(0.5 + level / 2, n - 1) * error
    low, high = mean - half, mean + half
    p = float(2 * special.stdtr(n - 1, -abs(mean) / error))
    if low > 0 or high < 0:
        verdict = _verdict(mean, maximize)
    elif margin is not None and equivalent(mean, error, n, margin, level):
        verdict = EQUIVALENT
    else:
        verdict = NOT_SEPARATED
    separated = verdict in (BETTER, WORSE)
    return PairedDifference(n, mean, low, high, p, verdict,
                            None if separated else seeds_to_separate(mean, sd, level),
                            sd, level, margin)


def equivalent(mean: float, error: float, seeds: int, margin: float, level: float = LEVEL
               ) -> bool:
    """Two one-sided tests (TOST), each at 1 − ``level``: the difference is above −margin and
    below +margin, i.e. the (2·level − 1) interval lies inside (−margin, +margin)."""
    if not margin > 0 or not error > 0:
        return False
    half = t_quantile(level, seeds - 1) * error
    return mean - half > -margin and mean + half < margin


def _verdict(mean: float, maximize: bool) -> str:
    return BETTER if (mean > 0) == maximize else WORSE


def seeds_to_separate(mean: float, sd: float, level: float = LEVEL) -> int | None:
    """The smallest n with t(n−1)·sd/√n < |mean|: seeds a paired comparison with this mean
    difference and spread would need. None when there is no difference to find, or when it
    would take more than MAX_SEEDS_TO_SEPARATE."""
    if mean == 0 or not math.isfinite(mean) or not math.isfinite(sd) or sd <= 0:
        return None
    # Start from the normal approximation and walk up: t shrinks towards z as n grows.
    z = normal_quantile(0.5 + level / 2)
    n = max(2, math.ceil((z * sd / abs(mean)) ** 2))
    while n <= MAX_SEEDS_TO_SEPARATE:
        if t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n) < abs(mean):
            return n
        n += 1
    return None


def power_of(effect: float, sd: float, seeds: int, level: float = LEVEL) -> float:
    """Power of a two-sided paired t-test at ``level`` with ``seeds`` pairs to find a true
    mean difference ``effect`` when the differences spread by ``sd`` (noncentral t)."""
    if seeds < 2 or not sd > 0:
        return math.nan
    critical = t_quantile(0.5 + level / 2, seeds - 1)
    shift = abs(effect) / sd * math.sqrt(seeds)
    return float(stats.nct.sf(critical, seeds - 1, shift)
                 + stats.nct.cdf(-critical, seeds - 1, shift))


def seeds_for_power(effect: float, sd: float, level: float = LEVEL, power: float = POWER,
                    least: int = 3) -> int | None:
    """The fewest paired seeds (at least ``least``) that find a true difference ``effect``
    with probability ``power`` at ``level``, the differences spreading by ``sd``: the size of
    a new race, chosen before it runs. None beyond MAX_SEEDS_TO_SEPARATE or with no effect."""
    if not effect or not math.isfinite(effect) or not math.isfinite(sd) or not sd > 0:
        return None
    z = normal_quantile(0.5 + level / 2) + normal_quantile(power)
    n = max(least, math.ceil((z * sd / abs(effect)) ** 2))  # the normal approximation
    if n > MAX_SEEDS_TO_SEPARATE:
        return None
    while n > least and power_of(effect, sd, n - 1, level) >= power:
        n -= 1
    while n <= MAX_SEEDS_TO_SEPARATE:
        if power_of(effect, sd, n, level) >= power:
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
