"""Statistics of rankings and seed noise, as plain functions of numbers: Kendall tau with a
bootstrap interval, Spearman rho, top-k overlap, seed noise against the spread between
ramps, reliability by Spearman-Brown, and the tau ceiling two noisy rankings can reach."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 4000


# ---------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class RankAgreement:
    """How one ranking of n ramps agrees with another."""

    n: int
    kendall_tau: float
    tau_p: float          # exact (n small, no ties) or asymptotic two-sided p of tau = 0
    tau_low: float        # 95% percentile bootstrap interval over ramps
    tau_high: float
    spearman_rho: float
    rho_p: float
    rho_low: float        # 95% percentile bootstrap interval over the same resamples
    rho_high: float
    top_k: int
    top_k_overlap: float  # share of the reference's top k that the scores also put in top k


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of x and y along the last axis (any leading batch shape)."""
    dx = np.sign(x[..., :, None] - x[..., None, :])
    dy = np.sign(y[..., :, None] - y[..., None, :])
    concordance = (dx * dy).sum(axis=(-2, -1))
    denominator = np.sqrt((dx * dx).sum(axis=(-2, -1)) * (dy * dy).sum(axis=(-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, concordance / denominator, np.nan)


def bootstrap_interval(statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
                       x: Sequence[float], y: Sequence[float],
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a rank ``statistic`` (vectorised over rows) over ramps drawn
    with replacement; the same ``seed`` draws the same resamples for every statistic."""
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_arr.size < 3:
        return math.nan, math.nan
    index = np.random.default_rng(seed).integers(0, x_arr.size, (resamples, x_arr.size))
    values = statistic(x_arr[index], y_arr[index])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_tau_interval(x: Sequence[float], y: Sequence[float],
                           resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                           level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of tau-b over ramps drawn with replacement (seeded)."""
    return bootstrap_interval(kendall_tau_b, x, y, resamples, seed, level)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of x and y along the last axis (average ranks for ties)."""
    rx, ry = stats.rankdata(x, axis=-1), stats.rankdata(y, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=-1) / denominator, np.nan)


def bootstrap_rho_interval(x: Sequence[float], y: Sequence[float],
                           resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                           level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of Spearman's rho over the same resamples as tau's."""
    return bootstrap_interval(spearman_rho, x, y, resamples, seed, level)


def default_top_k(n: int) -> int:
    return max(1, round(n / 3))


def top_k_overlap(scores: Sequence[float], reference: Sequence[float], k: int) -> float:
    """|top k by scores ∩ top k by reference| / k (higher is better for both; ties broken by
    position)."""
    k = min(k, len(scores))
    if k < 1:
        return math.nan
    top = set(np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k])
    ref_top = set(np.argsort(-np.asarray(reference, dtype=float), kind="stable")[:k])
    return len(top & ref_top) / k


def rank_agreement(scores: Sequence[float], reference: Sequence[float],
                   top_k: int | None = None, seed: int = 0) -> RankAgreement:
    """Agreement of the ranking by ``scores`` with the ranking by ``reference``."""
    n = len(scores)
    if n != len(reference):
        raise ValueError(f"{n} scores but {len(reference)} reference values")
    k = top_k or default_top_k(n)
    if n < 2 or np.ptp(scores) == 0 or np.ptp(reference) == 0:
        return RankAgreement(n, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan,
                             math.nan, math.nan, k, top_k_overlap(scores, reference, k))
    tau = stats.kendalltau(scores, reference)
    rho = stats.spearmanr(scores, reference)
    low, high = bootstrap_tau_interval(scores, reference, seed=seed)
    rho_low, rho_high = bootstrap_rho_interval(scores, reference, seed=seed)
    return RankAgreement(n, float(tau.statistic), float(tau.pvalue), low, high,
                         float(rho.statistic), float(rho.pvalue), rho_low, rho_high, k,
                         top_k_overlap(scores, reference, k))


@dataclass(frozen=True)
class NoiseSpread:
    """Seed noise against the differences between ramps, for one setting."""

    noise_std: float     # pooled within-ramp standard deviation over seeds
    spread_std: float    # standard deviation of the ramp means
    mean_seeds: float    # seeds per ramp, on average

    @property
    def noise_to_spread(self) -> float:
        return self.noise_std / self.spread_std if self.spread_std > 0 else math.nan

    @property
    def reliability(self) -> float:
        """Share of the variance of the ramp means that is not seed noise (0..1): the
        noise of a mean of s seeds is noise_std / sqrt(s)."""
        if not self.spread_std > 0 or math.isnan(self.noise_std):
            return math.nan
        noise_of_means = self.noise_std ** 2 / self.mean_seeds
        return max(0.0, 1.0 - noise_of_means / self.spread_std ** 2)


def noise_and_spread(scores: Mapping[str, Sequence[float]]) -> NoiseSpread:
    """Pooled within-ramp std (ramps with >= 2 seeds) and std of the ramp means."""
    groups = [np.asarray(s, dtype=float) for s in scores.values() if len(s) > 0]
    squares = sum(float(((g - g.mean()) ** 2).sum()) for g in groups if g.size > 1)
    freedom = sum(g.size - 1 for g in groups if g.size > 1)
    noise = math.sqrt(squares / freedom) if freedom else math.nan
    means = [float(g.mean()) for g in groups]
    spread = float(np.std(means, ddof=1)) if len(means) > 1 else math.nan
    seeds = float(np.mean([g.size for g in groups])) if groups else math.nan
    return NoiseSpread(noise, spread, seeds)


def ramps_differ_p(scores: Mapping[str, Sequence[float]]) -> float:
    """p-value of one-way ANOVA over the ramps measured with >= 2 seeds: small when the
    ramps differ by more than seed noise explains, near 1 when the setting cannot tell them
    apart at all."""
    groups = [list(s) for s in scores.values() if len(s) > 1]
    if len(groups) < 2 or all(np.ptp(g) == 0 for g in groups):
        return math.nan
    return float(stats.f_oneway(*groups).pvalue)


def seed_agreement(scores: Mapping[str, Sequence[float]]) -> float:
    """Mean Kendall tau between the rankings that two single seeds give (over seed pairs,
    each over the ramps measured with both): how reproducible one seed's ranking is."""
    most = max((len(s) for s in scores.values()), default=0)
    taus = []
    for a, b in itertools.combinations(range(most), 2):
        both = [s for s in scores.values() if len(s) > b]
        if len(both) < 2:
            continue
        tau = kendall_tau_b(np.array([s[a] for s in both]), np.array([s[b] for s in both]))
        if np.isfinite(tau):
            taus.append(float(tau))
    return float(np.mean(taus)) if taus else math.nan


def single_seed_tau(by_seed: Mapping[str, Mapping[int, float]], reference: Mapping[str, float]
                    ) -> float:
    """Mean Kendall tau, over the seeds, between one seed's ranking and the reference's
    (``reference``: label -> the reference's score, oriented like ``by_seed``): what one seed
    per ramp tells, to be set against a mean of several seeds at the same CPU cost."""
    seeds = sorted({seed for runs in by_seed.values() for seed in runs})
    taus = []
    for seed in seeds:
        labels = [k for k, runs in by_seed.items() if seed in runs and k in reference]
        if len(labels) < 2:
            continue
        tau = kendall_tau_b(np.array([by_seed[k][seed] for k in labels]),
                            np.array([reference[k] for k in labels]))
        if np.isfinite(tau):
            taus.append(float(tau))
    return float(np.mean(taus)) if taus else math.nan


def ramp_variance(noise_std: float, spread_std: float, measured_seeds: float) -> float:
    """The variance of the ramps' true scores: spread² − noise²/S, since a mean of S seeds
    carries noise²/S of seed noise on top of it (0 when the noise explains all the spread)."""
    if not spread_std > 0 or not math.isfinite(noise_std) or not measured_seeds >= 1:
        return math.nan
    return max(0.0, spread_std ** 2 - noise_std ** 2 / measured_seeds)


def reliability_at(noise_std: float, spread_std: float, measured_seeds: float,
                   seeds: float) -> float:
    """Reliability of a mean of ``seeds`` seeds, from noise and spread measured with
    ``measured_seeds`` (Spearman-Brown): σ_r² = spread² − noise²/S first, then
    σ_r²/(σ_r² + noise²/n). At n = S it is 1 − noise²/(S·spread²)."""
    ramps = ramp_variance(noise_std, spread_std, measured_seeds)
    if not math.isfinite(ramps):
        return math.nan
    if ramps == 0:
        return 0.0
    return ramps / (ramps + noise_std ** 2 / seeds)


def seeds_for_reliability(noise_std: float, spread_std: float, measured_seeds: float,
                          target: float = 0.8) -> float:
    """Seeds per ramp at which the Spearman-Brown reliability reaches ``target``: the n with
    σ_r²/(σ_r² + noise²/n) ≥ target, i.e. n ≥ target·noise²/((1 − target)·σ_r²); NaN when
    the ramps do not differ beyond the noise (no number of seeds reaches it)."""
    ramps = ramp_variance(noise_std, spread_std, measured_seeds)
    if not math.isfinite(ramps):
        return math.nan
    if ramps == 0:
        return math.nan
    return float(max(1, math.ceil(target * noise_std ** 2 / ((1 - target) * ramps) - 1e-9)))


def tau_ceiling(reliability: float, reference_reliability: float) -> float:
    """The Kendall tau that a proxy ranking exactly what the reference ranks reaches on
    average, given the seed noise of both: two noisy measurements of one quantity correlate
    at sqrt(rel · rel_ref) (Spearman's attenuation), and tau = (2/pi)·asin(r) for normal
    scores. A measured tau is read against this, not against 1."""
    product = reliability * reference_reliability
    if not math.isfinite(product):
        return math.nan
    return 2 / math.pi * math.asin(math.sqrt(min(1.0, max(0.0, product))))
