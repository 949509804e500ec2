"""The FLOPs budget: parsing, the feasible range, choosing a preset, and proposals under it."""

from __future__ import annotations

import random
import warnings

import optuna
import pytest

import search_spaces
from search_spaces import (
    Budget,
    SpaceError,
    check_budget,
    choose_base,
    format_flops,
    load_space,
    parse_budget,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

PAPER_SMALL_FLOPS = 4_848_476_928  # iFormer-S at 224, from the reference


@pytest.mark.parametrize("text, flops", [
    ("4.8GFLOPs", 4_800_000_000), ("4.8 GFLOPs", 4_800_000_000), ("4.8G", 4_800_000_000),
    ("4800MFLOPs", 4_800_000_000), ("4.8e9", 4_800_000_000), ("4.8GMACs", 4_800_000_000),
    ("4.8gflops", 4_800_000_000), ("4.8 G FLOPS", 4_800_000_000), ("4.8GMAC", 4_800_000_000),
    ("  4.8GFLOP ", 4_800_000_000), ("0.0048TFLOPs", 4_800_000_000), ("4800000K", 4_800_000_000),
    ("4848476928", PAPER_SMALL_FLOPS), ("4_848_476_928", PAPER_SMALL_FLOPS),
    ("9.4G", 9_400_000_000),
    (".5T", 500_000_000_000), ("1e3", 1000), ("12MMACs", 12_000_000), ("12MACs", 12),
])
def test_budget_syntax_that_is_accepted(text, flops):
    budget = parse_budget(text)
    assert budget.flops == flops and budget.img_size == (224, 224)
    assert budget.text == text.strip()


@pytest.mark.parametrize("text, says", [
    ("4.8GB", "'B' is not FLOPs or MACs"), ("-1", "negative"), ("0", "is zero"),
    ("abc", "does not start with a number"), ("", "empty"), ("   ", "empty"),
    ("4,8G", "comma"), ("4.8 GHz", "'Hz'"), ("4.8 params", "'params'"), ("G4.8", "number"),
    ("0.1", "less than one flop"), ("1e400", "too large"), ("4.8GG", "'G'"), ("nan", "number"),
    ("inf", "number"), ("4.8 GFLOPs/s", "'FLOPs/s'"),
])
def test_budget_syntax_that_is_refused(text, says):
    with pytest.raises(SpaceError) as info:
        parse_budget(text)
    message = str(info.value)
    assert says in message
    assert "4.8GFLOPs" in message  # every refusal shows the syntax that works
    assert "\n" not in message


def test_budget_resolution():
    assert parse_budget("16G", 384).img_size == (384, 384)
    assert parse_budget("16G", (256, 320)).img_size == (256, 320)
    for bad in (0, (224,), "big", (0, 224)):
        with pytest.raises(SpaceError, match="resolution"):
            parse_budget("4.8G", bad)


def test_format_flops():
    assert format_flops(PAPER_SMALL_FLOPS) == "4.848 GFLOPs"
    assert format_flops(4.8e9) == "4.800 GFLOPs"
    assert format_flops(16_097_814_528) == "16.098 GFLOPs"
    assert format_flops(2.5e12) == "2.500 TFLOPs"
    assert format_flops(12_500_000) == "12.500 MFLOPs"
    assert format_flops(999) == "999 FLOPs"


# ----------------------------------------------------------------------------- feasibility
def test_the_paper_ramp_of_small_is_over_a_4_8_gflops_budget():
    space = load_space("monotone")
    paper = space.baselines()["paper"]
    assert space.flops(paper) == PAPER_SMALL_FLOPS
    assert space.flops(paper) > parse_budget("4.8GFLOPs").flops
    assert space.contains(paper)


@pytest.mark.parametrize("text, preset", [
    ("4.8GFLOPs", "iformer_small"), ("9.4GFLOPs", "iformer_base"), ("14GFLOPs", "iformer_large"),
])
def test_choose_base(text, preset):
    assert choose_base(parse_budget(text)) == preset
    low, high = load_space("monotone", base=preset).flops_range()
    assert low <= parse_budget(text).flops <= high


def test_choose_base_at_another_resolution_and_when_nothing_fits():
    assert choose_base(parse_budget("16.1G", 384)) == "iformer_small"
    with pytest.raises(SpaceError) as info:
        choose_base(parse_budget("7G"))
    message = str(info.value)
    for name in ("iformer_small", "iformer_base", "iformer_large", "--base"):
        assert name in message
    small = load_space("monotone").flops_range()
    assert format_flops(small[0]) in message and format_flops(small[1]) in message


def test_a_budget_below_the_space_names_the_range_and_the_preset_that_fits():
    space = load_space("free")
    low, high = space.flops_range()
    with pytest.raises(SpaceError) as info:
        check_budget(space, Budget(low - 1))
    message = str(info.value)
    assert format_flops(low) in message and format_flops(high) in message
    assert "No preset fits" in message
    base_space = load_space("monotone", base="iformer_base")
    with pytest.raises(SpaceError, match="iformer_small fits this budget"):
        check_budget(base_space, parse_budget("4.8G"))


def test_over_generous_and_binding_budgets():
    space = load_space("monotone")
    low, high = space.flops_range()
    check = check_budget(space, Budget(high))
    assert (check.min_flops, check.max_flops, check.binds) == (low, high, False)
    assert "does not bind" in check.note
    assert "iformer_base" in check_budget(space, parse_budget("9.4G")).note
    check = check_budget(space, parse_budget("4.8G"))
    assert check.binds and "binds" in check.note
    assert check_budget(space, Budget(low)).binds


def test_feasible_fraction_ends():
    space = load_space("free")
    low, high = space.flops_range()
    assert space.feasible_fraction(Budget(low - 1)) == (0.0, True)
    assert space.feasible_fraction(Budget(high)) == (1.0, True)
    fraction, exact = space.feasible_fraction(Budget(low))
    assert exact and 0 < fraction < 1e-9


# ------------------------------------------------------------------------------- proposals
def check_proposal(space, trial, proposal, budget):
    assert not (proposal.feasible and proposal.flops > budget.flops)
    assert proposal.feasible == (proposal.flops <= budget.flops)
    assert proposal.flops == space.flops(proposal.ramp, budget.img_size)
    assert space.contains(proposal.ramp)
    assert space.decode(trial.params) == proposal.ramp  # the params describe the trained ramp
    assert trial.user_attrs["ramp"] == proposal.ramp
    assert trial.user_attrs["flops"] == proposal.flops
    assert trial.constraints[search_spaces.CONSTRAINT_KEY] == proposal.flops - budget.flops


@pytest.mark.parametrize("family", ["free", "monotone", "stagewise", "smooth"])
def test_propose_never_hands_over_an_over_budget_ramp(family):
    space = load_space(family)
    low, high = space.flops_range()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    for budget in (Budget(low), Budget(low + (high - low) // 20), parse_budget("4.8G"),
                   Budget(high)):
        feasible = 0
        for _ in range(60):
            trial = study.ask()
            proposal = space.propose(trial, budget)
            check_proposal(space, trial, proposal, budget)
            feasible += proposal.feasible
            study.tell(trial, float(proposal.flops))
        if family != "smooth":
            # Chain spaces narrow every range to values with a feasible completion, and these
            # costs are convex in the head count, so no proposal falls in a gap.
            assert feasible == 60
        assert feasible > 0


def test_propose_at_the_cheapest_budget_returns_a_cheapest_ramp():
    space = load_space("free")
    low = space.min_flops()
    rng = random.Random(5)
    for _ in range(50):
        proposal = space.sample(rng, Budget(low))
        assert proposal.feasible and proposal.repaired and proposal.flops == low


def test_every_feasible_ramp_lies_inside_the_narrowed_ranges():
    """Enqueued feasible ramps come back through propose unchanged and without Optuna's
    out-of-range warning: the narrowing never cuts a feasible ramp off."""
    space = load_space("monotone")
    budget = parse_budget("4.7G")
    rng = random.Random(6)
    ramps = [p.ramp for p in (space.sample(rng, budget) for _ in range(40)) if p.feasible]
    study = optuna.create_study()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ramp in ramps:
            study.enqueue_trial(space.encode(ramp))
            trial = study.ask()
            proposal = space.propose(trial, budget)
            assert proposal.ramp == ramp and proposal.feasible
            study.tell(trial, 0.0)


def test_an_enqueued_over_budget_ramp_comes_back_infeasible():
    space = load_space("monotone")
    budget = parse_budget("4.8G")
    paper = space.baselines()["paper"]
    study = optuna.create_study()
    study.enqueue_trial(space.encode(paper))
    trial = study.ask()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna: the fixed value is outside the narrowed range
        proposal = space.propose(trial, budget)
    assert proposal.ramp == paper and not proposal.feasible
    assert proposal.flops == PAPER_SMALL_FLOPS
    assert study.trials[-1].constraints == {"flops": float(PAPER_SMALL_FLOPS - budget.flops)}


def test_tpe_learns_the_budget_from_the_trial_constraints():
    """Optuna 5's TPE reads each trial's own constraint (no constraints_func)."""
    space = load_space("free")
    budget = parse_budget("4.7G")
    sampler = optuna.samplers.TPESampler(seed=7, n_startup_trials=5)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(15):
        trial = study.ask()
        proposal = space.propose(trial, budget)
        check_proposal(space, trial, proposal, budget)
        study.tell(trial, proposal.flops / 1e9)
    assert all(t.constraints["flops"] <= 0 for t in study.trials)
