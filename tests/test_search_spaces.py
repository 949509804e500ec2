"""Search spaces against brute force on a tiny base, and against real Optuna studies."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import optuna
import pytest

import search_spaces
from iformer import IFormerConfig
from search_spaces import Budget, SpaceError, load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

FAMILIES = ("free", "monotone", "stagewise", "smooth")


def tiny_base() -> IFormerConfig:
    # head_dim 4 everywhere; 6 blocks with 3, 3, 4, 4, 5, 5 heads: 14,400 free ramps.
    return IFormerConfig(depths=[1, 1, 2, 2], embed_dims=[12, 12, 16, 20],
                         num_heads=[3, 3, 4, 5], attention_heads=[1, 1, 2, 3, 3, 4])


def write_space(tmp_path, text: str, name: str = "space") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def rule_holds(family: str, config: IFormerConfig, ramp: tuple[int, ...]) -> bool:
    """The family's definition, written independently of the implementation."""
    heads = [s.num_heads for s in config.blocks()]
    stages = config.block_stages()
    if family == "monotone":
        ratios = [Fraction(a, n) for a, n in zip(ramp, heads)]
        return all(x <= y for x, y in zip(ratios, ratios[1:]))
    if family == "stagewise":
        return all(ramp[b] == ramp[c] for b in range(len(ramp)) for c in range(len(ramp))
                   if stages[b] == stages[c])
    return True


def all_ramps(config: IFormerConfig, low_end: int = 0, high_cut: int = 0):
    ranges = [range(low_end, s.num_heads + 1 - high_cut) for s in config.blocks()]
    return itertools.product(*ranges)


def brute_force(space, family: str, config: IFormerConfig) -> list[tuple[int, ...]]:
    ends = 0 if space.allow_ends else 1
    return [r for r in all_ramps(config, ends, ends) if rule_holds(family, config, r)]


@pytest.fixture(scope="module")
def tiny_spaces():
    return {family: load_space(family, base=tiny_base()) for family in FAMILIES}


# ------------------------------------------------------------------- exact against brute force
@pytest.mark.parametrize("family", ["free", "monotone", "stagewise"])
@pytest.mark.parametrize("allow_ends", [True, False])
def test_chain_space_is_exactly_its_definition(family, allow_ends):
    config = tiny_base()
    space = load_space(family, base=config, allow_ends=allow_ends)
    expected = brute_force(space, family, config)
    assert space.size() == len(expected)
    members = {r for r in all_ramps(config) if space.contains(list(r))}
    assert members == set(expected)
    # Every member is reachable by suggest: decoding its encoding walks the same ranges.
    for ramp in expected:
        params = space.encode(list(ramp))
        assert params is not None and set(params) == set(space.param_names())
        assert space.decode(params) == list(ramp)
    table = space.cost_table((64, 64))
    costs = sorted(table.flops(r) for r in expected)
    assert space.flops_range((64, 64)) == (costs[0], costs[-1])
    for budget_flops in (costs[0], costs[len(costs) // 3], costs[-2], costs[-1] - 1):
        fraction, exact = space.feasible_fraction(Budget(budget_flops, (64, 64)))
        assert exact
        assert fraction == pytest.approx(sum(c <= budget_flops for c in costs) / len(costs),
                                         abs=1e-12)


def test_monte_carlo_fraction_agrees_with_the_exact_count():
    space = load_space("monotone", base=tiny_base())
    low, high = space.flops_range()
    budget = Budget((low + high) // 2)
    exact, is_exact = space.feasible_fraction(budget)
    estimate, estimate_is_exact = space.feasible_fraction(budget, exact_work_limit=0,
                                                          samples=40_000, seed=1)
    assert is_exact and not estimate_is_exact
    assert estimate == pytest.approx(exact, abs=0.015)


def test_bounds_and_fixed_blocks_shape_the_space(tmp_path):
    config = tiny_base()
    path = write_space(tmp_path, """
family: monotone
allow_ends: true
stages:
  2: {min_heads: 1}
  3: {max_high_ratio: 0.5}                 # stage 3 (4 heads): 2..4 heads
  4: {min_high_ratio: 0.3}                 # stage 4 (5 heads): C_h/C >= 0.3, 0..3 heads
fixed:
  0: 1
""")
    space = load_space(path, base=config)

    def allowed(ramp):
        return (rule_holds("monotone", config, ramp) and ramp[0] == 1 and ramp[1] >= 1
                and all(2 <= a for a in ramp[2:4]) and all(a <= 3 for a in ramp[4:]))

    expected = [r for r in all_ramps(config) if allowed(r)]
    assert expected and space.size() == len(expected)
    assert {r for r in all_ramps(config) if space.contains(list(r))} == set(expected)
    assert "b00_s1" not in space.param_names()
    costs = [space.flops(r) for r in expected]
    assert space.flops_range() == (min(costs), max(costs))
    for ramp in expected:
        assert space.decode(space.encode(list(ramp))) == list(ramp)
    rng = random.Random(9)
    budget = Budget(sorted(costs)[len(costs) // 4])
    for _ in range(300):
        proposal = space.sample(rng, budget)
        assert space.contains(proposal.ramp) and proposal.feasible


def test_a_space_without_ramps_is_refused(tmp_path):
    # 2 of 3 heads (C_h/C = 1/3) first, then at most 1 of 5 heads (4/5) last: C_h/C would rise.
    path = write_space(tmp_path, "family: monotone\nfixed: {0: 2}\nstages: {4: {max_heads: 1}}\n")
    with pytest.raises(SpaceError, match="has no ramp.*block 0"):
        load_space(path, base=tiny_base())


def test_min_and_max_flops_of_presets_respect_the_family():
    space = load_space("monotone")
    free = load_space("free")
    paper = space.baselines()["paper"]
    low, high = space.flops_range()
    assert free.min_flops() <= low <= space.flops(paper) <= high <= free.max_flops()
    # The free extremes take each block's cheapest head count, which is not monotone here.
    cheapest = [min(range(len(c)), key=c.__getitem__) for c in free.cost_table().per_block]
    assert free.flops(cheapest) == free.min_flops() and not space.contains(cheapest)
    assert low > free.min_flops()


# ---------------------------------------------------------------------------- the families
def test_every_monotone_sample_is_monotone():
    space = load_space("monotone")
    rng = random.Random(0)
    budget = search_spaces.parse_budget("4.8G")
    for _ in range(3000):
        ramp = space.sample(rng).ramp
        assert rule_holds("monotone", space.base, tuple(ramp)), ramp
        assert rule_holds("monotone", space.base, tuple(space.sample(rng, budget).ramp))


def test_monotone_draws_spread_over_every_block():
    """Drawn in bisection order, plain uniform draws reach half the head counts of any block
    (drawn from the input side, they would ratchet up to all-attention at the output)."""
    space = load_space("monotone")
    rng = random.Random(8)
    seen = [set() for _ in range(space.num_blocks)]
    for _ in range(2000):
        for block, heads in enumerate(space.sample(rng).ramp):
            seen[block].add(heads)
    for block, (low, high) in enumerate(space.bounds):
        assert len(seen[block]) >= (high - low + 1) // 2, (block, seen[block])


def test_stagewise_broadcasts_one_count_per_stage():
    space = load_space("stagewise")
    stages = space.base.block_stages()
    assert space.param_names() == ["stage1_heads", "stage2_heads", "stage3_heads",
                                   "stage4_heads"]
    rng = random.Random(1)
    for _ in range(500):
        ramp = space.sample(rng).ramp
        for stage in range(1, 5):
            assert len({a for a, s in zip(ramp, stages) if s == stage}) == 1
    ramp = space.decode({"stage1_heads": 0, "stage2_heads": 6, "stage3_heads": 4,
                         "stage4_heads": 12})
    assert ramp == [0] * 3 + [6] * 3 + [4] * 9 + [12] * 3


def test_smooth_rounding_gives_valid_head_counts_and_round_trips(tiny_spaces):
    for space in (load_space("smooth"), load_space("smooth", allow_ends=False),
                  tiny_spaces["smooth"]):
        heads = [s.num_heads for s in space.base.blocks()]
        ramps = space.distinct_ramps()
        low = 0 if space.allow_ends else 1
        assert all(low <= int(a) <= n - low for row in ramps for a, n in zip(row, heads))
        assert space.size() == len({tuple(r) for r in ramps.tolist()})
        for ramp in ramps[:: max(1, len(ramps) // 300)].tolist():
            assert space.decode(space.encode(ramp)) == ramp


def test_smooth_endpoints_and_straight_line():
    space = load_space("smooth")
    # A straight line (steepness 0) from all-high to all-low frequency.
    ramp = space.decode({"high_first": 1.0, "high_last": 0.0, "midpoint": 0.5,
                         "steepness": 0.0})
    heads = [s.num_heads for s in space.base.blocks()]
    assert ramp[0] == 0 and ramp[-1] == heads[-1]
    ratios = [Fraction(a, n) for a, n in zip(ramp, heads)]
    assert all(x <= y for x, y in zip(ratios, ratios[1:]))
    # Equal ends give a flat C_h/C whatever the shape: 0.5 of 3 heads rounds half up to 2 high.
    flat = space.decode({"high_first": 0.5, "high_last": 0.5, "midpoint": 0.3,
                         "steepness": 10.0})
    assert flat == [n - (n + 1) // 2 for n in heads]


def test_decode_refuses_parameters_outside_the_space():
    space = load_space("monotone")
    params = space.encode(space.baselines()["paper"])
    with pytest.raises(SpaceError, match="is outside .* keep C_h/C from rising"):
        space.decode({**params, "b03_s2": 0})  # a/n would fall from 1/3 to 0
    with pytest.raises(SpaceError, match="missing"):
        space.decode({})
    with pytest.raises(SpaceError, match="grid"):
        load_space("smooth").decode({"high_first": 0.123, "high_last": 0, "midpoint": 0,
                                     "steepness": 0})


# ----------------------------------------------------------------------- Optuna round trips
@pytest.mark.parametrize("family", FAMILIES)
def test_enqueue_then_suggest_returns_the_same_ramp(family):
    space = load_space(family)
    rng = random.Random(2)
    ramps = [space.sample(rng).ramp for _ in range(5)]
    ramps += [r for r in space.baselines().values() if space.contains(r)]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for ramp in ramps:
        study.enqueue_trial(space.encode(ramp))
        trial = study.ask()
        assert space.suggest(trial) == ramp
        assert space.decode(trial.params) == ramp
        study.tell(trial, 0.0)
    assert space.encode([0] * 17) is None
    assert not space.contains([0] * 17)


def test_suggest_is_define_by_run_with_readable_names():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    space = load_space("free")
    trial = study.ask()
    ramp = space.suggest(trial)
    assert list(trial.params) == space.param_names()
    assert list(trial.params)[:4] == ["b00_s1", "b01_s1", "b02_s1", "b03_s2"]
    assert [trial.params[n] for n in space.param_names()] == ramp


def test_baselines_of_the_small_preset():
    space = load_space("stagewise")
    baselines = space.baselines()
    assert set(baselines) == {"paper", "equal_split", "reverse_ramp", "all_attention_but_one",
                              "one_attention_head"}
    assert baselines["paper"] == [1] * 3 + [3] * 3 + [7] * 4 + [9] * 5 + [11] * 3
    assert baselines["equal_split"] == [1] * 3 + [3] * 3 + [5] * 9 + [6] * 3
    assert baselines["all_attention_but_one"] == [2] * 3 + [5] * 3 + [9] * 9 + [11] * 3
    assert baselines["one_attention_head"] == [1] * 18
    heads = [s.num_heads for s in space.base.blocks()]
    reverse = [Fraction(a, n) for a, n in zip(baselines["reverse_ramp"], heads)]
    assert all(x >= y for x, y in zip(reverse, reverse[1:]))  # C_h/C rises with depth
    assert baselines["reverse_ramp"] == [2] * 3 + [3] * 3 + [3] * 4 + [1] * 5 + [1] * 3
    # Baselines come from the base, whatever the space: the paper ramp is not stagewise.
    assert not space.contains(baselines["paper"]) and space.encode(baselines["paper"]) is None
    assert load_space("monotone").contains(baselines["paper"])
    assert space.flops(baselines["paper"]) == 4_848_476_928


def test_flops_of_a_ramp_that_does_not_fit_the_base():
    space = load_space("free")
    with pytest.raises(SpaceError, match="17 entries but iformer_small has 18 blocks"):
        space.flops([1] * 17)
    with pytest.raises(SpaceError, match="block 0 of the ramp asks for -1 attention heads"):
        space.flops([-1] + [1] * 17)
    with pytest.raises(SpaceError, match="block 17 .* 13 attention heads .* use 0 to 12"):
        space.flops([1] * 17 + [13])


def test_space_names_and_unknown_space():
    assert search_spaces.space_names() == list(FAMILIES)
    with pytest.raises(SpaceError, match="free, monotone, stagewise, smooth"):
        load_space("monotonic")
