"""The ramps a fidelity study measures: spread over the space, and kept once drawn."""

from __future__ import annotations

import random

import numpy as np

from rampsearch.fidelity.ramps import choose_ramps, farthest_points, ramp_profile
from search_spaces import load_space, parse_budget


def profiles(space, ramps):
    return np.array([ramp_profile(r, space.base.depths, space.base.num_heads)
                     for r in ramps.values()])


def test_twenty_ramps_span_conv_heavy_to_attention_heavy_and_early_to_late():
    space = load_space("monotone", base="iformer_small")
    budget = parse_budget("4.8GFLOPs")
    ramps = choose_ramps(space, 20, budget, seed=0)
    drawn = {k: v for k, v in ramps.items() if k.startswith("sampled_")}
    assert len(drawn) == 15 and len({tuple(r) for r in ramps.values()}) == 20
    assert all(space.contains(r) and space.flops(r) <= budget.flops for r in drawn.values())
    overall = profiles(space, ramps).mean(axis=1)
    assert overall.min() < 0.1 and overall.max() > 0.8     # conv-heavy and attention-heavy
    shares = profiles(space, drawn)
    assert (shares[:, :2].mean(axis=1) > 0.5).any()          # attention from the first stages
    assert ((shares[:, :3].max(axis=1) < 0.1) & (shares[:, 3] > 0.4)).any()  # attention late
    # Spread, not clustered: the drawn ramps are farther apart than uniform draws are.
    uniform = {f"u{i}": space.sample(random.Random(i), budget).ramp for i in range(15)}
    assert min_gap(shares) > min_gap(profiles(space, uniform))


def min_gap(points: np.ndarray) -> float:
    gaps = np.linalg.norm(points[:, None] - points[None, :], axis=2)
    return float(gaps[~np.eye(len(points), dtype=bool)].min())


def test_known_ramps_are_kept_under_their_labels_and_the_list_only_grows():
    space = load_space("monotone", base="iformer_small")
    budget = parse_budget("4.8GFLOPs")
    first = choose_ramps(space, 8, budget, seed=0)
    assert list(choose_ramps(space, 12, budget, seed=0).items())[:8] == list(first.items())
    known = {**first, "sampled_2": first["sampled_2"]}
    other_seed = choose_ramps(space, 10, budget, seed=7, known=known)
    assert list(other_seed.items())[:8] == list(first.items())   # the study's ramps stay
    assert list(other_seed)[8:] == ["sampled_4", "sampled_5"]


def test_farthest_points_picks_the_far_corners_first():
    candidates = [np.array(p, dtype=float) for p in ([0.5, 0.5], [0.0, 0.0], [1.0, 1.0],
                                                     [0.45, 0.5], [1.0, 0.0])]
    assert farthest_points(candidates, [np.array([0.5, 0.5])], 3)[:1] in ([1], [2])
    picks = farthest_points(candidates, [np.array([0.5, 0.5])], 3)
    assert set(picks) == {1, 2, 4}
    assert farthest_points(candidates, [], 1) in ([1], [2], [4])
