"""Racing the leaders against the paper's ramp, seed by seed.

A search's leaders were chosen by one seed, so their search scores are biased upwards (the
winner's curse); the race never reuses that seed. Each round gives every surviving leader,
and the paper's ramp, one more seed (the first round two, since one seed has no interval).
After each round every survivor is compared, seed-paired, with the current best; one that is
significantly worse is dropped (the paper's ramp is never dropped: it is what the verdict is
about). The race ends when the best is separated from the paper's ramp and from every other
survivor, or when the seeds or trainings allowed run out.

The state of a race is never stored: it is replayed from the runs in the study, so an
interrupted race resumes by training only the (ramp, seed) pairs it still lacks, and the
same runs always give the same verdict. A race looks at the same comparison once per round,
and stopping at the first look whose 95% interval excludes zero would claim a difference
between equal ramps far more often than one test's 5%; so every round but the last tests at
99% (as group-sequential trials make early looks stricter), and the last round and the
verdict use the 95% interval. Simulated on equal ramps (README; tests/test_paired.py bounds
it), one leader over up to 6 seeds, `run`'s default, is called better than the paper's ramp
in 4.0% of races and worse in 3.4% (8.5% and 7.5% with 95% at every look), and finds a real
difference of two noise standard deviations in 80%.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..study.objective import Objective
from .paired import LEVEL, PairedDifference, paired_difference

MIN_SEEDS = 2  # the first round: an interval needs two paired seeds


# The level of the tests that end a race or drop a leader before its last round. A race that
# stopped at the first round whose 95% interval excluded zero would take up to five looks at
# the same comparison and claim a difference between equal ramps far more often than 5%;
# stricter early looks (as group-sequential trials do) hold that near one test's rate, and
# the final round, and the verdict, use the 95% interval.
INTERIM_LEVEL = 0.99


@dataclass(frozen=True)
class RaceRules:
    seeds: tuple[int, ...]            # the race's seeds, in the order they are given
    max_trainings: int | None = None  # stop before a round that would exceed this
    interim_level: float = INTERIM_LEVEL  # the level of every round's test but the last


def race_seeds(search_seed: int, max_seeds: int) -> tuple[int, ...]:
    """Seeds after the one that selected the leaders."""
    return tuple(range(search_seed + 1, search_seed + 1 + max_seeds))


@dataclass
class RaceState:
    """Where a race stands after replaying its runs."""

    rounds: int = 0                                   # complete rounds
    survivors: list[Hashable] = field(default_factory=list)
    dropped: dict[Hashable, int] = field(default_factory=dict)   # contestant -> round
    failed: dict[Hashable, int] = field(default_factory=dict)    # contestant -> seed
    history: list[dict] = field(default_factory=list)            # one row per round and ramp
    finished: bool = False
    reason: str = ""
    best: Hashable | None = None


def replay(scores: Mapping[Hashable, Mapping[int, float | None]], contestants: Sequence[Hashable],
           paper: Hashable, rules: RaceRules, objective: Objective) -> RaceState:
    """Replay the rounds that the runs in ``scores`` complete. A score of None is a run that
    ended without one (the ramp diverged or failed): that contestant leaves the race."""
    state = RaceState(survivors=list(contestants))
    for size in range(MIN_SEEDS, len(rules.seeds) + 1):
        used = rules.seeds[:size]
        for key in list(state.survivors):
            bad = next((s for s in used if s in scores.get(key, {})
                        and scores[key][s] is None), None)
            if bad is not None and key != paper:
                state.survivors.remove(key)
                state.failed[key] = bad
        if any(s not in scores.get(k, {}) for k in state.survivors for s in used):
            break  # this round is not complete yet
        if any(scores[paper][s] is None for s in used):
            state.finished, state.reason = True, "the paper's ramp failed to train"
            break
        state.rounds = size
        level = LEVEL if size == len(rules.seeds) else rules.interim_level
        play_round(state, scores, paper, used, objective, level)
        if state.finished:
            break
    else:
        if state.rounds == len(rules.seeds) and not state.finished:
            state.finished = True
            state.reason = f"reached the most seeds allowed ({len(rules.seeds)})"
    return state


def play_round(state: RaceState, scores: Mapping[Hashable, Mapping[int, float | None]],
               paper: Hashable, used: Sequence[int], objective: Objective,
               level: float) -> None:
    """Compare every survivor with the round's best; drop those worse at ``level``, and end
    the race when the best is separated at ``level`` from the paper's ramp and the rest.
    The history records each survivor's 95% interval to the paper's ramp."""
    runs = {k: {s: float(scores[k][s]) for s in used} for k in state.survivors}
    means = {k: float(np.mean(list(v.values()))) for k, v in runs.items()}
    best = max(means, key=lambda k: objective.sign() * means[k])
    state.best = best
    for key in list(state.survivors):
        against_best = paired_difference(runs[key], runs[best], objective.maximize, level)
        against_paper = paired_difference(runs[key], runs[paper], objective.maximize)
        dropped = key != paper and key != best and against_best.verdict == "worse"
        state.history.append({
            "round": len(used) - MIN_SEEDS + 1, "seeds": len(used), "contestant": key,
            "mean": means[key], "diff_vs_paper": against_paper.mean,
            "diff_low": against_paper.low, "diff_high": against_paper.high,
            "verdict": against_paper.verdict, "dropped": dropped})
        if dropped:
            state.survivors.remove(key)
            state.dropped[key] = len(used) - MIN_SEEDS + 1
    others = [k for k in state.survivors if k not in (best, paper)]
    if others:
        return
    if best == paper:
        state.finished, state.reason = True, "every leader is worse than the paper's ramp"
    elif paired_difference(runs[best], runs[paper], objective.maximize,
                           level).verdict != "tied":
        state.finished, state.reason = True, ("the best is separated from the paper's ramp "
                                              "and from every other leader")


def next_jobs(state: RaceState, scores: Mapping[Hashable, Mapping[int, float | None]],
              rules: RaceRules) -> list[tuple[Hashable, int]]:
    """(contestant, seed) pairs the next round needs that have no run yet; none when the race
    is finished."""
    if state.finished:
        return []
    size = max(MIN_SEEDS, state.rounds + 1)
    if size > len(rules.seeds):
        return []
    return [(key, seed) for key in state.survivors for seed in rules.seeds[:size]
            if seed not in scores.get(key, {})]


def verdicts(state: RaceState, scores: Mapping[Hashable, Mapping[int, float | None]],
             contestants: Sequence[Hashable], paper: Hashable,
             objective: Objective) -> dict[Hashable, PairedDifference]:
    """Each leader's paired difference to the paper's ramp over all the seeds both have."""
    def finite(key: Hashable) -> dict[int, float]:
        return {s: float(v) for s, v in scores.get(key, {}).items()
                if v is not None and math.isfinite(v)}

    paper_runs = finite(paper)
    return {key: paired_difference(finite(key), paper_runs, objective.maximize)
            for key in contestants if key != paper}


def reported_leader(state: RaceState, diffs: Mapping[Hashable, PairedDifference],
                    objective: Objective) -> Hashable | None:
    """The leader a race's verdict speaks of: the race's best, or, when the paper's ramp is
    the best, the surviving leader closest to it (a leader that failed to train never).
    ``diffs``: each leader's difference to the paper's ramp (:func:`verdicts`)."""
    if state.best in diffs and state.best not in state.failed:
        return state.best
    finite = [k for k, d in diffs.items() if math.isfinite(d.mean) and k not in state.failed]
    alive = [k for k in finite if k in state.survivors] or finite
    return max(alive, key=lambda k: objective.sign() * diffs[k].mean) if alive else None
