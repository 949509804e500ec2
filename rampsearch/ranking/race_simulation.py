"""The race's error rates by simulation: the project's own race code on made-up scores.

Each training's score is its ramp's true value, plus a seed effect shared by every ramp
trained with that seed, plus the training's own noise (standard deviation 1, so effects are
in noise standard deviations), optionally rounded to a quantum as top-1 on a finite
validation set is. K leaders of equal worth race a paper's ramp that is worse by ``shift``;
a race claims a difference when the leader its verdict speaks of is called better or worse.
With ``shift`` 0 every claim is false; with ``shift`` > 0 'better' is the power and 'worse'
a claim in the wrong direction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..study.objective import OBJECTIVES
from .paired import BETTER, EQUIVALENT, NOT_SEPARATED, WORSE
from .race import RaceRules, next_jobs, race_seeds, replay, reported_leader, verdicts

SEED_EFFECT_STD = 0.5  # shared by every ramp of a seed: pairing removes it
PAPER = "paper"


def simulated_race(rng: np.random.Generator, rules: RaceRules, leaders: int, shift: float,
                   quantum: float = 0.0) -> tuple[str, int]:
    """One race of ``leaders`` equal ramps against the paper's ramp, scored as validation loss
    (lower is better; the paper's ramp is worse by ``shift``): the reported leader's verdict
    and the trainings the race took."""
    objective = OBJECTIVES["val_loss"]
    keys: list = [*range(leaders), PAPER]
    effect = {s: rng.normal(0, SEED_EFFECT_STD) for s in rules.seeds}
    runs: dict = {}
    while jobs := next_jobs(replay(runs, keys, PAPER, rules, objective), runs, rules):
        for key, seed in jobs:
            score = (shift if key == PAPER else 0.0) + effect[seed] + rng.normal(0, 1)
            runs.setdefault(key, {})[seed] = round(score / quantum) * quantum if quantum \
                else score
    state = replay(runs, keys, PAPER, rules, objective)
    diffs = verdicts(state, runs, keys, PAPER, objective, rules)
    leader = reported_leader(state, diffs, objective)
    trainings = sum(len(r) for r in runs.values())
    return (diffs[leader].verdict if leader is not None else NOT_SEPARATED), trainings


def verdict_rates(rng: np.random.Generator, rules_for: Callable[[int], RaceRules], leaders: int,
                  shift: float, races: int, quantum: float = 0.0) -> dict[str, float]:
    """The share of ``races`` races ending in each verdict, and their mean trainings.
    ``rules_for(leaders)``: the design raced."""
    rules = rules_for(leaders)
    counts = dict.fromkeys((BETTER, WORSE, EQUIVALENT, NOT_SEPARATED), 0)
    trainings = 0
    for _ in range(races):
        verdict, used = simulated_race(rng, rules, leaders, shift, quantum)
        counts[verdict] += 1
        trainings += used
    return {**{k: v / races for k, v in counts.items()}, "trainings": trainings / races}


def default_rules(max_seeds: int) -> Callable[[int], RaceRules]:
    """The race `rampsearch` runs, up to ``max_seeds`` seeds, for K leaders."""
    return lambda leaders: RaceRules(race_seeds(0, max_seeds), comparisons=leaders)
