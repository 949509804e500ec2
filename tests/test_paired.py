"""Seed-paired statistics and the race's rules on hand-made data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rampsearch.options import RACE_DEFAULTS
from rampsearch.ranking.paired import (
    paired_difference,
    power_of,
    seed_blocked,
    seeds_for_power,
    seeds_to_separate,
)
from rampsearch.ranking.race import (
    INTERIM_LEVEL,
    MIN_SEEDS,
    RaceRules,
    next_jobs,
    race_seeds,
    replay,
    reported_leader,
    verdicts,
)
from rampsearch.ranking.race_simulation import default_rules, verdict_rates
from rampsearch.study.objective import OBJECTIVES, get_objective

LOSS, TOP1 = OBJECTIVES["val_loss"], OBJECTIVES["top1"]
# A seed effect shared by every ramp, much larger than the difference between the ramps.
SEED_EFFECT = {0: 0.6, 1: -0.5, 2: -0.1, 3: 0.3, 4: -0.3}


def scores(offset: float, noise: dict[int, float] | None = None) -> dict[int, float]:
    noise = noise or {}
    return {s: 77.0 + e + offset + noise.get(s, 0.0) for s, e in SEED_EFFECT.items()}


def test_pairing_removes_a_shared_seed_effect_that_welch_keeps():
    a = scores(0.4, {0: 0.05, 1: -0.05, 2: 0.03, 3: -0.02, 4: 0.0})
    b = scores(0.0)
    paired = paired_difference(a, b, maximize=True)
    assert paired.seeds == 5 and paired.mean == pytest.approx(0.402)
    assert paired.verdict == "better" and paired.low > 0 and paired.p < 0.001
    # The unpaired test sees the seed effect as noise and cannot tell them apart.
    assert stats.ttest_ind(list(a.values()), list(b.values()), equal_var=False).pvalue > 0.05
    # Lower-is-better scores flip the verdict's side.
    assert paired_difference(a, b, maximize=False).verdict == "worse"


def test_paired_interval_is_the_t_interval_of_the_differences():
    a, b = {0: 3.0, 1: 5.0, 2: 4.0}, {0: 1.0, 1: 2.0, 2: 3.0}
    result = paired_difference(a, b, maximize=True)
    diffs = np.array([2.0, 3.0, 1.0])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)
    assert (result.low, result.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert result.verdict == "not separated"  # 2 ± 2.48 contains 0
    assert result.seeds_to_separate is not None and result.seeds_to_separate > 3


def test_only_common_seeds_are_paired_and_one_seed_separates_nothing():
    result = paired_difference({0: 1.0, 1: 2.0, 5: 9.0}, {1: 1.5, 0: 0.5, 7: 0.0}, True)
    assert result.seeds == 2 and result.mean == pytest.approx(0.5)
    single = paired_difference({0: 2.0}, {0: 1.0}, True)
    assert single.seeds == 1 and single.verdict == "not separated" and math.isnan(single.low)


def test_differences_equal_on_every_seed_are_never_decisive():
    # Quantised scores make two or three equal differences a matter of chance: spread 0 is
    # no evidence, whatever the mean.
    for seeds in (2, 3, 4):
        a = {s: 0.50 + 0.01 * s for s in range(seeds)}
        b = {s: 0.45 + 0.01 * s for s in range(seeds)}
        result = paired_difference(a, b, maximize=True, margin=1.0)
        assert result.sd < 1e-12 and result.verdict == "not separated"
        assert math.isnan(result.p) and math.isnan(result.low)
    # ...nor do they end a race, nor drop a leader.
    rules = RaceRules((1, 2, 3, 4))
    runs = {"a": {s: 0.40 + 0.1 * s for s in rules.seeds},
            "paper": {s: 0.50 + 0.1 * s for s in rules.seeds}}
    state = replay(runs, ["a", "paper"], "paper", rules, LOSS)
    assert state.rounds == 4 and "most seeds" in state.reason and not state.dropped


def test_equivalent_needs_the_tost_interval_inside_the_margin():
    a = {0: 1.00, 1: 1.02, 2: 0.99, 3: 1.01, 4: 1.00, 5: 0.98}
    b = {0: 1.005, 1: 1.01, 2: 1.0, 3: 1.0, 4: 1.01, 5: 0.99}
    diffs = np.array([a[s] - b[s] for s in a])
    half90 = stats.t.ppf(0.95, 5) * diffs.std(ddof=1) / math.sqrt(6)
    inside = abs(diffs.mean()) + half90
    assert paired_difference(a, b, False, margin=inside * 1.01).verdict == "equivalent"
    assert paired_difference(a, b, False, margin=inside * 0.99).verdict == "not separated"
    assert paired_difference(a, b, False).verdict == "not separated"  # no margin: no claim
    # A difference whose interval excludes 0 is better/worse, whatever the margin.
    shifted = {s: v - 0.1 for s, v in a.items()}
    assert paired_difference(shifted, b, False, margin=1.0).verdict == "better"


def test_seeds_for_power_reach_the_stated_power():
    n = seeds_for_power(effect=0.5, sd=1.0)
    assert power_of(0.5, 1.0, n) >= 0.8 > power_of(0.5, 1.0, n - 1)
    # Against simulated paired t-tests at that size.
    rng = np.random.default_rng(3)
    diffs = rng.normal(0.5, 1.0, size=(4000, n))
    t = diffs.mean(axis=1) / (diffs.std(axis=1, ddof=1) / math.sqrt(n))
    found = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    assert found == pytest.approx(power_of(0.5, 1.0, n), abs=0.03)
    assert seeds_for_power(0.0, 1.0) is None and seeds_for_power(1e-6, 1.0) is None


def test_seeds_to_separate_reaches_the_interval():
    n = seeds_to_separate(mean=0.1, sd=0.2)
    assert stats.t.ppf(0.975, n - 1) * 0.2 / math.sqrt(n) < 0.1
    assert stats.t.ppf(0.975, n - 2) * 0.2 / math.sqrt(n - 1) >= 0.1
    assert seeds_to_separate(0.0, 0.2) is None
    assert seeds_to_separate(1e-6, 1.0) is None  # beyond any sensible number of seeds


def test_seed_blocked_noise_excludes_the_seed_effect():
    ramps = {"a": scores(0.0), "b": scores(0.5), "c": scores(1.0, {0: 0.1, 1: -0.1})}
    blocked = seed_blocked(ramps)
    assert blocked.ramps == 3 and blocked.seeds == 5
    # Seed effects are recovered (up to the tiny noise put on ramp c).
    for seed, effect in SEED_EFFECT.items():
        assert blocked.seed_effects[seed] == pytest.approx(effect - np.mean(
            list(SEED_EFFECT.values())), abs=0.05)
    assert blocked.noise_std < 0.1 and blocked.spread_std == pytest.approx(0.5)
    assert blocked.reliability > 0.99 and blocked.ramps_differ_p < 1e-6
    # Unpaired, the same data looks noisy: the within-ramp std carries the seed effect.
    within = np.mean([np.std(list(v.values()), ddof=1) for v in ramps.values()])
    assert within > 0.4


def test_seed_blocked_uses_complete_blocks_only():
    blocked = seed_blocked({"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {0: 2.0, 1: 3.0}})
    assert blocked.seeds == 2 and blocked.noise_std == pytest.approx(0.0)


def test_race_drops_a_clearly_worse_ramp_early_and_reports_ties():
    rules = RaceRules(race_seeds(0, 5))
    assert rules.seeds == (1, 2, 3, 4, 5)
    effect = {1: 0.06, 2: -0.05, 3: -0.01, 4: 0.03, 5: -0.03}
    wobble = {1: 0.002, 2: -0.003, 3: 0.004, 4: -0.001, 5: 0.0}
    runs = {
        "paper": {s: 0.50 + e for s, e in effect.items()},
        "bad": {s: 0.80 + e + wobble[s] for s, e in effect.items()},
        "twin": {s: 0.50 + e + wobble[s] for s, e in effect.items()},
    }
    state = replay(runs, ["bad", "twin", "paper"], "paper", rules, LOSS)
    assert state.dropped == {"bad": 1}      # dropped in the first round (three paired seeds)
    assert not any(row["contestant"] == "bad" for row in state.history if row["seeds"] > 3)
    assert state.finished and "most seeds" in state.reason
    last = [row for row in state.history if row["seeds"] == 5]
    assert {row["contestant"]: row["verdict"] for row in last} == {"twin": "not separated",
                                                                   "paper": "not separated"}


def test_race_resumes_with_only_the_missing_seeds():
    rules = RaceRules((1, 2, 3, 4, 5))
    runs = {"a": {1: 0.5, 2: 0.6, 3: 0.55}, "paper": {1: 0.55, 2: 0.62, 3: 0.6, 4: 0.6}}
    state = replay(runs, ["a", "paper"], "paper", rules, LOSS)
    assert state.rounds == 3 and not state.finished
    assert next_jobs(state, runs, rules) == [("a", 4)]
    # Nothing of a finished race is trained again.
    runs["a"][4] = 0.4
    runs["a"][5], runs["paper"][5] = 0.5, 0.5
    finished = replay(runs, ["a", "paper"], "paper", rules, LOSS)
    assert finished.finished and next_jobs(finished, runs, rules) == []


def test_a_ramp_that_fails_to_train_leaves_the_race():
    rules = RaceRules((1, 2, 3))
    runs = {"a": {1: None, 2: 0.5}, "b": {1: 0.4, 2: 0.41}, "paper": {1: 0.5, 2: 0.52}}
    state = replay(runs, ["a", "b", "paper"], "paper", rules, LOSS)
    assert state.failed == {"a": 1} and "a" not in state.survivors


def test_no_look_before_three_seeds():
    rules = RaceRules((1, 2, 3, 4))
    runs = {"a": {1: 80.0, 2: 81.0}, "paper": {1: 70.0, 2: 70.8}}
    state = replay(runs, ["a", "paper"], "paper", rules, TOP1)
    assert MIN_SEEDS == 3 and state.rounds == 0 and not state.history and not state.finished
    assert sorted(next_jobs(state, runs, rules)) == [("a", 3), ("paper", 3)]


def test_interim_looks_are_haybittle_peto_and_the_last_spends_what_they_left():
    # The interval of this comparison at 3 seeds excludes 0 at 95% and 99%, not at 99.9%: a
    # race whose early looks were back at 95% or 99% would stop here.
    runs = {"a": {1: 0.40, 2: 0.42, 3: 0.41}, "paper": {1: 0.50, 2: 0.50, 3: 0.50}}
    p = paired_difference(runs["a"], runs["paper"], maximize=False).p
    assert 0.001 < p < 0.01
    rules = RaceRules((1, 2, 3, 4, 5, 6))
    assert INTERIM_LEVEL >= 0.999 and rules.look_level(3) == INTERIM_LEVEL
    state = replay(runs, ["a", "paper"], "paper", rules, LOSS)
    assert state.rounds == 3 and not state.finished
    assert replay(runs, ["a", "paper"], "paper", RaceRules(rules.seeds, interim_level=0.95),
                  LOSS).finished
    # Four looks: the last at 1 - (0.05 - 3 x 0.001); corrected for K leaders (Bonferroni).
    assert rules.final_level == pytest.approx(0.953)
    assert RaceRules(rules.seeds, comparisons=3).verdict_level == pytest.approx(
        1 - 0.047 / 3)
    assert RaceRules((1, 2, 3)).final_level == pytest.approx(0.95)  # one look: nothing spent


def test_race_direction_follows_the_objective():
    rules = RaceRules((1, 2, 3))
    runs = {"a": {1: 80.0, 2: 81.0, 3: 80.5}, "paper": {1: 70.0, 2: 70.8, 3: 70.6}}
    up = replay(runs, ["a", "paper"], "paper", rules, TOP1)
    assert up.best == "a" and up.finished and "separated" in up.reason
    down = replay(runs, ["a", "paper"], "paper", rules, LOSS)
    assert down.best == "paper" and down.finished and down.dropped == {"a": 1}


def test_the_verdict_never_speaks_of_a_leader_that_failed_to_train():
    rules = RaceRules((1, 2, 3))
    # The paper's ramp is best; "gone" diverged at seed 2 but looks closest on its one seed.
    runs = {"near": {1: 0.52, 2: 0.55, 3: 0.53}, "gone": {1: 0.50, 2: None},
            "paper": {1: 0.50, 2: 0.52, 3: 0.51}}
    keys = ["near", "gone", "paper"]
    state = replay(runs, keys, "paper", rules, LOSS)
    assert state.failed == {"gone": 2} and state.best == "paper"
    assert reported_leader(state, verdicts(state, runs, keys, "paper", LOSS), LOSS) == "near"
    # An unfinished round in which the last best failed: its earlier lead does not count.
    rules = RaceRules((1, 2, 3, 4))
    runs = {"a": {1: 0.40, 2: 0.47, 3: 0.45, 4: None}, "b": {1: 0.45, 2: 0.44, 3: 0.46},
            "paper": {1: 0.50, 2: 0.49, 3: 0.47}}
    state = replay(runs, ["a", "b", "paper"], "paper", rules, LOSS)
    assert state.best == "a" and state.failed == {"a": 4}
    diffs = verdicts(state, runs, ["a", "b", "paper"], "paper", LOSS)
    assert reported_leader(state, diffs, LOSS) == "b"


@pytest.mark.parametrize("leaders", [1, 3])
def test_a_race_of_equal_ramps_claims_a_difference_within_the_stated_rate(leaders):
    # The project's own race on simulated paired scores (rampsearch.ranking.race_simulation): both
    # ways together within one test's 5% (plus simulation error) at run's default seeds, for
    # one leader and for three compared with the paper's ramp at once.
    rates = verdict_rates(np.random.default_rng(11), default_rules(RACE_DEFAULTS["max_seeds"]),
                          leaders, shift=0.0, races=1500)
    assert rates["better"] + rates["worse"] <= 0.055


def test_a_race_finds_a_real_difference_of_two_noise_sds():
    rates = verdict_rates(np.random.default_rng(12), default_rules(RACE_DEFAULTS["max_seeds"]),
                          RACE_DEFAULTS["reeval_top"], shift=2.0, races=600)
    assert rates["better"] >= 0.70 and rates["worse"] == 0.0


def test_unknown_objective_names_the_choices():
    with pytest.raises(Exception, match="val_loss"):
        get_objective("accuracy")
