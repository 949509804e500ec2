"""Fidelity statistics on hand-made numbers, the settings parser and the ramp choice."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rampsearch import cli
from rampsearch.errors import UserError
from rampsearch.fidelity.ramps import choose_ramps
from rampsearch.fidelity.settings import (
    MEASURED_UNTRUSTED,
    parse_settings,
    supernet_note,
    trust_warning,
)
from rampsearch.fidelity.statistics import (
    bootstrap_tau_interval,
    default_top_k,
    kendall_tau_b,
    noise_and_spread,
    ramps_differ_p,
    rank_agreement,
    reliability_at,
    seed_agreement,
    seeds_for_reliability,
    single_seed_tau,
    tau_ceiling,
    top_k_overlap,
)
from rampsearch.fidelity.tables import (
    curve_targets,
    epoch_agreement,
    format_tables,
    paper_order_line,
    ramp_table,
    reference_caveat,
    summary_table,
    tabled_runs,
    versus_paper_lines,
)
from rampsearch.ranking.paired import seed_blocked
from rampsearch.training.proxy import ProxySettings
from search_spaces import load_space, parse_budget

DEPTHS = [3, 3, 9, 3]


# ------------------------------------------------------------------------- rank statistics
def test_rank_agreement_on_a_known_pair():
    # One swapped pair out of ten: tau = (9 - 1) / 10, rho = 1 - 6 * 2 / (5 * 24).
    result = rank_agreement([1, 3, 2, 4, 5], [1, 2, 3, 4, 5], top_k=2)
    assert result.kendall_tau == pytest.approx(0.8)
    assert result.spearman_rho == pytest.approx(0.9)
    assert result.tau_p == pytest.approx(stats.kendalltau([1, 3, 2, 4, 5], [1, 2, 3, 4, 5]).pvalue)
    assert result.tau_low <= result.kendall_tau <= result.tau_high
    assert result.top_k == 2 and result.top_k_overlap == 1.0


def test_rank_agreement_reversed_and_constant():
    assert rank_agreement([5, 4, 3, 2], [1, 2, 3, 4]).kendall_tau == pytest.approx(-1.0)
    flat = rank_agreement([1, 1, 1], [1, 2, 3])
    assert math.isnan(flat.kendall_tau) and math.isnan(flat.spearman_rho)


def test_vectorised_tau_matches_scipy_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, (20, 9)).astype(float)
    y = rng.integers(0, 4, (20, 9)).astype(float)
    ours = kendall_tau_b(x, y)
    for row in range(20):
        expected = stats.kendalltau(x[row], y[row]).statistic
        assert ours[row] == pytest.approx(expected, nan_ok=True)


def test_bootstrap_interval_is_seeded_and_widens_with_disagreement():
    x = [1, 2, 3, 4, 5, 6, 7, 8]
    assert bootstrap_tau_interval(x, x) == (1.0, 1.0)
    noisy = [2, 1, 4, 3, 6, 5, 8, 7]
    low, high = bootstrap_tau_interval(x, noisy, seed=1)
    assert (low, high) == bootstrap_tau_interval(x, noisy, seed=1)
    assert -1 <= low < stats.kendalltau(x, noisy).statistic < high <= 1
    assert all(math.isnan(v) for v in bootstrap_tau_interval([1, 2], [2, 1]))


def test_top_k_overlap():
    assert top_k_overlap([5, 4, 3, 2, 1], [5, 4, 1, 2, 3], 2) == 1.0
    assert top_k_overlap([5, 4, 3, 2, 1], [5, 4, 1, 2, 3], 3) == pytest.approx(2 / 3)
    assert top_k_overlap([1, 2, 3], [3, 2, 1], 1) == 0.0
    assert [default_top_k(n) for n in (2, 3, 8, 12)] == [1, 1, 3, 4]


def test_noise_against_spread():
    noise = noise_and_spread({"a": [1.0, 3.0], "b": [5.0, 7.0], "c": [9.0]})
    assert noise.noise_std == pytest.approx(math.sqrt(2))   # pooled over a and b only
    assert noise.spread_std == pytest.approx(np.std([2.0, 6.0, 9.0], ddof=1))
    assert noise.mean_seeds == pytest.approx(5 / 3)


def test_noise_against_spread_two_ramps():
    noise = noise_and_spread({"a": [1.0, 3.0], "b": [5.0, 7.0]})
    assert noise.noise_std == pytest.approx(math.sqrt(2))
    assert noise.spread_std == pytest.approx(math.sqrt(8))
    assert noise.noise_to_spread == pytest.approx(0.5)
    assert noise.reliability == pytest.approx(1 - (2 / 2) / 8)
    pure_noise = noise_and_spread({"a": [0.0, 4.0], "b": [4.0, 0.0]})
    assert pure_noise.spread_std == 0 and math.isnan(pure_noise.reliability)


def test_ramps_differ_p():
    assert ramps_differ_p({"a": [1.0, 1.1], "b": [5.0, 5.1]}) < 0.01
    assert ramps_differ_p({"a": [1.0, 5.0], "b": [5.0, 1.0], "c": [3.0]}) == pytest.approx(1.0)
    assert math.isnan(ramps_differ_p({"a": [1.0, 2.0], "b": [3.0]}))


def test_seed_agreement():
    # Seed 0 ranks a < b < c, seed 1 ranks a < c < b: one discordant pair of three.
    assert seed_agreement({"a": [1, 1], "b": [2, 3], "c": [3, 2]}) == pytest.approx(1 / 3)
    assert math.isnan(seed_agreement({"a": [1], "b": [2]}))


# ------------------------------------------------------------------------------- tables
def hand_made_runs() -> pd.DataFrame:
    """Four ramps; the proxy swaps the two best, the reference has no seed noise."""
    means = {"paper": (70.0, 80.0), "equal_split": (71.0, 79.0), "sampled_1": (60.0, 70.0),
             "sampled_2": (50.0, 60.0)}
    rows = []
    for index, (label, (proxy, reference)) in enumerate(means.items()):
        ramp = [1] * 3 + [3] * 3 + [index + 1] * 9 + [9] * 3
        for setting, mean, wall in (("proxy", proxy, 60.0), ("reference", reference, 240.0)):
            for seed, delta in ((0, -1.0), (1, 1.0)):
                noise = delta if setting == "proxy" else 0.0
                rows.append({"trial": len(rows), "label": label, "ramp": ramp,
                             "setting": setting, "seed": seed, "status": "completed",
                             "top1": mean + noise, "val_loss": (100 - mean - noise) / 50,
                             "wall_s": wall, "cpus": 1.0,
                             "flops": 4_000_000_000 + index, "params": 20_000_000 + index,
                             "curve": {1: mean / 2 + noise, 2: mean + noise}})
    rows.append({**rows[-1], "trial": len(rows), "seed": 2, "status": "diverged", "top1": 0.0})
    return pd.DataFrame(rows)


def test_ramp_table_means_ranks_and_zero_cost():
    zero_cost = {"paper": {"synflow": 1.0, "naswot": 4.0, "grad_norm": 2.0},
                 "equal_split": {"synflow": 2.0, "naswot": 3.0, "grad_norm": 1.0}}
    table = ramp_table(hand_made_runs(), zero_cost, DEPTHS)
    assert list(table["label"]) == ["paper", "equal_split", "sampled_1", "sampled_2"]
    assert list(table["reference_rank"]) == [1, 2, 3, 4]
    assert list(table["proxy_rank"]) == [2, 1, 3, 4]
    paper = table.iloc[0]
    assert paper["proxy_mean"] == 70.0 and paper["proxy_std"] == pytest.approx(math.sqrt(2))
    assert paper["reference_seeds"] == 2  # the diverged run is not averaged in
    assert paper["naswot"] == 4.0 and math.isnan(table.iloc[2]["synflow"])
    assert paper["ramp"] == "1x3 | 3x3 | 1x9 | 9x3"


def test_ramp_means_use_the_seeds_every_ramp_has():
    """An interrupted measurement: one ramp already has a third proxy seed, on which every
    ramp would have scored low. Its mean stays over the two shared seeds, so the comparison
    stays paired."""
    runs = hand_made_runs()
    extra = runs[(runs["label"] == "sampled_2") & (runs["setting"] == "proxy")].iloc[0]
    runs.loc[len(runs)] = {**extra.to_dict(), "trial": len(runs), "seed": 2, "top1": 20.0}
    table = ramp_table(runs, {}, DEPTHS).set_index("label")
    assert table.loc["sampled_2", "proxy_mean"] == 50.0
    assert set(table["proxy_seeds"]) == {2}
    assert list(table["proxy_rank"]) == [2, 1, 3, 4]


def test_an_unfinished_scorer_is_left_out_not_cutting_every_row():
    """A third setting measured on two of the four ramps so far (an interrupted measurement):
    the tables keep all four ramps for the finished scorers and leave it out, saying how
    far it got. A ramp whose only run diverged counts as measured."""
    runs = hand_made_runs()
    late = runs[(runs["setting"] == "proxy") & runs["label"].isin(["paper", "sampled_1"])]
    runs = pd.concat([runs, late.assign(setting="proxy2")], ignore_index=True)
    diverged = runs[(runs["setting"] == "proxy") & (runs["label"] == "sampled_2")].iloc[0]
    runs.loc[len(runs)] = {**diverged.to_dict(), "setting": "proxy3", "status": "diverged"}
    for label in ("paper", "equal_split", "sampled_1"):
        ran = runs[(runs["setting"] == "proxy") & (runs["label"] == label)]
        runs = pd.concat([runs, ran.assign(setting="proxy3")], ignore_index=True)
    assert len(ramp_table(runs, {}, DEPTHS)) == 2  # every row cut to the unfinished one's
    kept, left_out = tabled_runs(runs)
    assert left_out == {"proxy2": (2, 4)}
    table = ramp_table(kept, {}, DEPTHS)
    assert len(table) == 3  # proxy3 has no completed run of sampled_2: that ramp has no row
    assert "proxy2_mean" not in table.columns and "proxy3_mean" in table.columns
    assert "proxy2" not in set(summary_table(table, kept)["scorer"])


def test_each_ramp_is_compared_with_the_paper_seed_by_seed():
    """A seed effect of +-3 top-1 shared by every ramp hides a 1-point gain from an unpaired
    comparison; the paired difference in the table finds it, and leaves a 0.2 one not separated."""
    effects, rows = {0: -3.0, 1: 3.0, 2: 0.0}, []
    offsets = {"paper": (0.0, 0.0, 0.0), "equal_split": (1.1, 0.9, 1.0),
               "sampled_1": (0.3, -0.7, -0.2)}
    for index, (label, offset) in enumerate(offsets.items()):
        for setting in ("proxy", "reference"):
            for seed, effect in effects.items():
                top1 = 70.0 + effect + offset[seed]
                rows.append({"trial": len(rows), "label": label, "ramp": [index + 1] * 18,
                             "setting": setting, "seed": seed, "status": "completed",
                             "top1": top1, "val_loss": (100 - top1) / 50, "wall_s": 60.0,
                             "cpus": 1.0, "flops": 4e9, "curve": {}})
    table = ramp_table(pd.DataFrame(rows), {}, DEPTHS).set_index("label")
    better = table.loc["equal_split"]
    paper = [70.0 + e for e in effects.values()]
    gained = [70.0 + e + o for e, o in zip(effects.values(), offsets["equal_split"])]
    assert stats.ttest_ind(gained, paper, equal_var=False).pvalue > 0.5  # unpaired: nothing
    expected = stats.ttest_rel(gained, paper).confidence_interval(0.95)
    assert better["proxy_vs_paper"] == pytest.approx(1.0)
    assert better["proxy_vs_paper_low"] == pytest.approx(expected.low)
    assert better["proxy_vs_paper_high"] == pytest.approx(expected.high)
    assert better["proxy_verdict"] == "better" and better["proxy_vs_paper_seeds"] == 3
    assert math.isnan(better["proxy_seeds_to_separate"])
    close = table.loc["sampled_1"]
    assert close["proxy_verdict"] == "not separated" and close["proxy_seeds_to_separate"] > 3
    assert table.loc["paper", "proxy_verdict"] == ""
    assert math.isnan(table.loc["paper", "proxy_vs_paper"])
    text = "\n".join(versus_paper_lines(table.reset_index(), ["proxy", "reference"], 2))
    assert "paired difference to the paper's ramp" in text
    line = next(row for row in text.splitlines() if row.startswith("equal_split"))
    assert line.count("better") == 2 and "+1.00 [" in line
    assert versus_paper_lines(table.drop(index="paper").reset_index(), ["proxy"], 2) == []


def proxy_tau_per_minute(summary: pd.DataFrame) -> float:
    return float(summary.loc["proxy", "tau_per_cpu_min"])


def test_summary_rows_and_values():
    runs = hand_made_runs()
    zero_cost = {label: {"synflow": float(i), "naswot": -float(i), "grad_norm": 1.0}
                 for i, label in enumerate(["sampled_2", "sampled_1", "equal_split", "paper"])}
    table = ramp_table(runs, zero_cost, DEPTHS)
    summary = summary_table(table, runs).set_index("scorer")
    assert list(summary.index) == ["proxy", "synflow", "naswot", "grad_norm", "gflops",
                                   "mparams", "reference"]
    # The size baselines rank a bigger model better: here the biggest ramps are the worst.
    assert summary.loc["gflops", "kendall_tau"] == pytest.approx(-1.0)
    assert summary.loc["mparams", "kendall_tau"] == pytest.approx(-1.0)
    assert proxy_tau_per_minute(summary) == pytest.approx(4 / 6)  # 1 CPU-minute a trial
    proxy = summary.loc["proxy"]
    assert proxy["kendall_tau"] == pytest.approx(4 / 6)
    assert proxy["top_k"] == 1 and proxy["top_k_overlap"] == 0.0  # the proxy's best is 2nd
    assert proxy["noise_std"] == pytest.approx(math.sqrt(2))
    assert proxy["cpu_min_per_trial"] == pytest.approx(1.0)
    assert summary.loc["reference", "cpu_min_per_trial"] == pytest.approx(4.0)
    assert summary.loc["reference", "noise_std"] == 0.0
    assert summary.loc["synflow", "kendall_tau"] == pytest.approx(1.0)
    assert summary.loc["naswot", "kendall_tau"] == pytest.approx(-1.0)
    assert math.isnan(summary.loc["grad_norm", "kendall_tau"])  # constant: no ranking
    # The proxy's noise is a seed effect shared by every ramp (-1 on seed 0, +1 on seed 1):
    # unpaired it is sqrt(2) top-1, seed-blocked it is nothing.
    assert proxy["blocked_noise_std"] == pytest.approx(0.0, abs=1e-9)
    assert proxy["blocked_seeds"] == 2 and proxy["reliability_1_seeds"] == pytest.approx(1.0)
    assert proxy["reliability"] < 1.0
    # Each seed alone ranks like the mean here (the same shift for every ramp).
    assert proxy["single_seed_tau"] == pytest.approx(4 / 6)
    assert math.isnan(summary.loc["reference", "single_seed_tau"])
    # Neither setting has seed noise left once seeds are blocked: a perfect proxy would reach
    # tau 1; zero-cost scores and the reference itself get no ceiling.
    assert proxy["tau_ceiling"] == pytest.approx(1.0)
    assert summary[["tau_ceiling"]].drop(index="proxy").isna().all().all()


def test_tau_ceiling_is_what_a_perfect_proxy_reaches_through_noise():
    """Two noisy measurements of the same ramp qualities: their mean tau is the ceiling."""
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(300, 40))  # 300 measurements of 40 ramps each
    for proxy_rel, reference_rel in ((0.7, 0.5), (0.9, 0.8), (0.3, 0.3)):
        proxy = truth + rng.normal(scale=math.sqrt(1 / proxy_rel - 1), size=truth.shape)
        reference = truth + rng.normal(scale=math.sqrt(1 / reference_rel - 1), size=truth.shape)
        measured = kendall_tau_b(proxy, reference).mean()
        assert measured == pytest.approx(tau_ceiling(proxy_rel, reference_rel), abs=0.02)
    assert tau_ceiling(1.0, 1.0) == pytest.approx(1.0) and tau_ceiling(0.0, 0.9) == 0.0
    assert tau_ceiling(0.8, 0.8) == pytest.approx(2 / math.pi * math.asin(0.8))
    assert math.isnan(tau_ceiling(math.nan, 0.8))


def test_reliability_at_other_seed_counts_is_spearman_brown():
    """Measured on 3 paired seeds, the reliability of a mean of n seeds is the share of a
    fresh n-seed mean's variance that is the ramps' true difference: simulated with known
    ramp and noise variances, it is estimated at every n, not only at the 3 measured."""
    rng = np.random.default_rng(5)
    ramp_std, noise_std, measured, ramps = 1.0, 1.5, 3, 400
    truth = rng.normal(0, ramp_std, size=ramps)

    def study(seeds: int) -> np.ndarray:  # ramps x seeds, with a seed effect shared by all
        return (truth[:, None] + rng.normal(0, 2.0, size=seeds)[None, :]
                + rng.normal(0, noise_std, size=(ramps, seeds)))

    blocked = seed_blocked({r: dict(enumerate(row)) for r, row in enumerate(study(measured))})
    for n in (1, 2, 3, 6, 12):
        known = ramp_std ** 2 / (ramp_std ** 2 + noise_std ** 2 / n)
        fresh = np.mean([np.corrcoef(study(n).mean(axis=1), truth)[0, 1] ** 2
                         for _ in range(20)])
        estimated = reliability_at(blocked.noise_std, blocked.spread_std, measured, n)
        assert fresh == pytest.approx(known, abs=0.04)
        assert estimated == pytest.approx(known, abs=0.06)
    assert reliability_at(blocked.noise_std, blocked.spread_std, measured, measured) == (
        pytest.approx(blocked.reliability))
    # Seeds for 0.8: n >= 0.8 noise^2 / (0.2 ramp variance) = 9 here.
    assert seeds_for_reliability(noise_std, math.sqrt(ramp_std ** 2 + noise_std ** 2 / 3), 3
                                 ) == 9
    # A spread no larger than the noise alone gives: no true differences, no seed count.
    assert reliability_at(1.0, 0.5, 3, 10) == 0.0
    assert math.isnan(seeds_for_reliability(1.0, 0.5, 3))


def test_a_noisy_reference_is_said_to_be_noisy():
    noisy = pd.Series({"blocked_reliability": 0.21, "blocked_seeds": 2, "seeds_for_08": 8})
    text = reference_caveat(noisy)
    assert "0.21 at 2 seeds" in text and "about 8 seeds" in text and "neither confirm" in text
    partly = pd.Series({"blocked_reliability": 0.75, "blocked_seeds": 3, "seeds_for_08": 4})
    text = reference_caveat(partly)
    assert "0.75 at 3 seeds" in text and "about 4 seeds" in text and "beside its ceiling" in text
    sound = pd.Series({"blocked_reliability": 0.9, "blocked_seeds": 3, "seeds_for_08": 2})
    assert "measures the proxy" in reference_caveat(sound)
    # The hand-made reference has no seed noise at all: tau against it is a measurement.
    runs = hand_made_runs()
    table = ramp_table(runs, {}, DEPTHS)
    assert "measures the proxy" in format_tables(table, summary_table(table, runs))


def test_single_seed_tau_is_the_mean_over_seeds():
    reference = {"a": 1.0, "b": 2.0, "c": 3.0}
    # Seed 0 agrees fully, seed 1 swaps b and c (tau 1/3), seed 2 has one ramp only.
    by_seed = {"a": {0: 1.0, 1: 1.0, 2: 5.0}, "b": {0: 2.0, 1: 3.0}, "c": {0: 3.0, 1: 2.0}}
    assert single_seed_tau(by_seed, reference) == pytest.approx((1 + 1 / 3) / 2)


def test_loss_ranks_lowest_first_and_agrees_like_top1():
    runs = hand_made_runs()
    table = ramp_table(runs, {}, DEPTHS, score="val_loss")
    assert list(table["label"]) == ["paper", "equal_split", "sampled_1", "sampled_2"]
    assert list(table["reference_rank"]) == [1, 2, 3, 4]
    assert list(table["proxy_rank"]) == [2, 1, 3, 4]
    summary = summary_table(table, runs, score="val_loss").set_index("scorer")
    assert summary.loc["proxy", "kendall_tau"] == pytest.approx(4 / 6)
    assert set(summary["score"]) == {"val_loss"}


def test_epoch_agreement_per_setting():
    runs = hand_made_runs()
    epochs = epoch_agreement(runs, ramp_table(runs, {}, DEPTHS))
    reference = epochs[epochs["setting"] == "reference"]
    assert list(reference["epoch"]) == [1, 2] and list(reference["kendall_tau"]) == [1.0, 1.0]
    proxy = epochs[epochs["setting"] == "proxy"]
    assert proxy["kendall_tau"].iloc[-1] == pytest.approx(4 / 6)


# ------------------------------------------------------------------------------ settings
def test_settings_default_pairs_and_base():
    assert parse_settings("default") == ProxySettings()
    settings = parse_settings("epochs=12,width=0.5")
    assert (settings.epochs, settings.width, settings.lr) == (12, 0.5, ProxySettings().lr)
    base = parse_settings("train_samples=256, batch-size=32")
    reference = parse_settings("epochs=12", base=base, flag="--reference")
    assert (reference.train_samples, reference.batch_size, reference.epochs) == (256, 32, 12)
    assert parse_settings("lr=2e-3").lr == 2e-3


def test_settings_from_yaml_file(tmp_path):
    path = tmp_path / "reference.yaml"
    path.write_text("epochs: 12\nresolution: 96\n")
    settings = parse_settings(str(path))
    assert (settings.epochs, settings.resolution) == (12, 96)


@pytest.mark.parametrize("text, words", [
    ("epoch=12", ["--reference", "unknown proxy setting(s) epoch", "epochs"]),
    ("epochs=many", ["--reference", "epochs is 'many'", "an integer"]),
    ("epochs=1.5", ["--reference", "epochs must be an integer"]),
    ("width=0", ["--reference", "width"]),
    ("epochs", ["--reference", "neither 'default', key=value pairs"]),
    ("epochs=12,,=3", ["--reference", "is not key=value"]),
])
def test_bad_settings_are_named(text, words):
    with pytest.raises(UserError) as caught:
        parse_settings(text, flag="--reference")
    for word in words:
        assert word in str(caught.value)


def test_cli_reports_bad_settings_without_traceback(capsys):
    assert cli.main(["fidelity", "--proxy", "epoch=3", "--results", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "--proxy 'epoch=3'" in err and "Traceback" not in err
    assert cli.main(["fidelity", "--reference", "default"]) == 2
    assert "--reference equals --proxy" in capsys.readouterr().err


# --------------------------------------------------------------------------------- ramps
def test_choose_ramps_baselines_first_then_feasible_samples():
    space = load_space("monotone", base="iformer_small")
    budget = parse_budget("4.8GFLOPs")
    ramps = choose_ramps(space, 8, budget, seed=0)
    assert list(ramps)[:5] == list(space.baselines())
    assert list(ramps)[5:] == ["sampled_1", "sampled_2", "sampled_3"]
    assert len({tuple(r) for r in ramps.values()}) == 8
    for label in list(ramps)[5:]:
        assert space.contains(ramps[label])
        assert space.flops(ramps[label]) <= budget.flops
    assert choose_ramps(space, 8, budget, seed=0) == ramps
    longer = choose_ramps(space, 10, budget, seed=0)
    assert list(longer.items())[:8] == list(ramps.items())   # more samples extend the list
    assert choose_ramps(space, 8, budget, seed=1) != ramps
    assert list(choose_ramps(space, 3)) == ["paper", "equal_split", "reverse_ramp"]


def test_choose_ramps_refuses_an_impossible_count():
    space = load_space("monotone", base="iformer_small")
    cheapest = parse_budget(str(space.min_flops()))  # a single ramp fits
    with pytest.raises(UserError, match="lower --samples"):
        choose_ramps(space, 7, cheapest)
    with pytest.raises(UserError, match="at least 1"):
        choose_ramps(space, 0)


# ------------------------------------------------------------------------- trust warning
def test_trust_warning_within_the_measured_range_only():
    warning = trust_warning(ProxySettings())
    assert warning.startswith("warning") and "docs/fidelity.md" in warning
    assert all(len(line) <= 100 for line in warning.splitlines())
    measured = dataclasses.replace(ProxySettings(), **MEASURED_UNTRUSTED)
    assert trust_warning(measured) is not None
    assert trust_warning(dataclasses.replace(ProxySettings(), epochs=1, width=0.125)) is not None
    for name, most in MEASURED_UNTRUSTED.items():
        higher = most * 2 if isinstance(most, int) else most + 0.25
        assert trust_warning(dataclasses.replace(measured, **{name: higher})) is None, name


# ------------------------------------------------------------------- learning-curve score
def crossing_runs() -> pd.DataFrame:
    """Three ramps whose proxy loss curves (3 epochs of 100 steps) cross after the proxy: the
    one lowest at step 300 is the flattest, and the reference (at 1,000 steps) ranks by the
    slopes."""
    shapes = {"paper": (3.2, 0.18), "equal_split": (2.0, 0.10), "reverse_ramp": (2.6, 0.14)}
    rows = []
    for index, (label, (b, c)) in enumerate(shapes.items()):
        ramp = [1] * 3 + [3] * 3 + [index + 1] * 9 + [9] * 3
        curve = {e: b * (100 * e) ** -c for e in (1, 2, 3)}
        for setting, loss in (("proxy", curve[3]), ("reference", b * 1000 ** -c)):
            for seed in (0, 1):
                rows.append({"trial": len(rows), "label": label, "ramp": ramp,
                             "setting": setting, "seed": seed, "status": "completed",
                             "top1": 50.0, "val_loss": loss, "wall_s": 60.0, "cpus": 1.0,
                             "flops": 4e9, "params": 2e7,
                             "curve": curve if setting == "proxy" else {1: loss}})
    return pd.DataFrame(rows)


def test_the_learning_curve_score_sees_a_crossing_the_final_loss_misses():
    runs = crossing_runs()
    table = ramp_table(runs, {}, DEPTHS, "val_loss", {"proxy": (100, 1000)}).set_index("label")
    for label, (b, c) in {"paper": (3.2, 0.18), "equal_split": (2.0, 0.10)}.items():
        assert table.loc[label, "proxy_curve"] == pytest.approx(b * 1000 ** -c)
    summary = summary_table(table.reset_index(), runs, "val_loss").set_index("scorer")
    assert summary.loc["proxy", "kendall_tau"] < 0 < summary.loc["proxy_curve", "kendall_tau"]
    assert summary.loc["proxy_curve", "kendall_tau"] == pytest.approx(1.0)
    # It reads the proxy's own runs: their CPU time, no training of its own.
    assert summary.loc["proxy_curve", "cpu_min_per_trial"] == pytest.approx(1.0)


def test_curve_targets_come_from_the_stored_settings():
    proxy = ProxySettings(epochs=3, train_samples=6400, batch_size=64)
    one_epoch = ProxySettings(epochs=1)
    reference = ProxySettings(epochs=4, train_samples=9469, batch_size=64)
    fidelity = {"reference": reference.to_dict(),
                "proxies": {"proxy": one_epoch.to_dict(), "proxy2": proxy.to_dict()}}
    assert curve_targets(fidelity) == {"proxy2": (100, 4 * 147)}
    assert curve_targets({}) == {}


def test_the_paper_order_line_names_the_reference_order():
    table = ramp_table(crossing_runs(), {}, DEPTHS, "val_loss")
    line = paper_order_line(table)
    assert "the reference ranks paper (#1) > reverse_ramp (#2) > equal_split (#3)" in line
    assert "another order" in line
    assert "not measured" in paper_order_line(table[table["label"] != "paper"])


def test_the_trust_note_names_what_was_measured_on_the_data():
    note = trust_warning(ProxySettings(), "imagenette")
    assert note.startswith("note") and "20 ramps" in note and "docs/fidelity.md" in note
    other = trust_warning(ProxySettings(), "/data/in100-64")
    assert "no measurement" in other
    for text in (note, other, supernet_note()):
        assert all(len(line) <= 100 for line in text.splitlines())
    # A longer proxy is no longer warned about on Fashion-MNIST; on other data the note
    # stays (nothing measured there reached the reference).
    longer = dataclasses.replace(ProxySettings(), epochs=24)
    assert trust_warning(longer) is None and trust_warning(longer, "imagenette") is not None


def test_rho_has_a_bootstrap_interval_like_tau():
    same = rank_agreement([1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0, 30.0, 40.0, 50.0])
    assert (same.rho_low, same.rho_high) == pytest.approx((1.0, 1.0))
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    noisy = rank_agreement(x, x + rng.normal(size=12))
    assert noisy.rho_low < noisy.spearman_rho < noisy.rho_high
    assert noisy.rho_low < noisy.rho_high <= 1.0
