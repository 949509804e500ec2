"""Racing the leaders against the paper's ramp, seed by seed.

A search's leaders were chosen by one seed, so their search scores are biased upwards (the
winner's curse); the race never reuses that seed. The first round gives every leader, and the
paper's ramp, three seeds (fewer leave the first interval one or two degrees of freedom, and
two equal differences would make its spread 0); each later round one more. After each round
every survivor is compared, seed-paired, with the current best; one that is significantly
worse is dropped (the paper's ramp is never dropped: it is what the verdict is about). The
race ends when the best is separated from the paper's ramp and from every other survivor,
when the seeds allowed run out, or before a round that would exceed the trainings allowed.

The state of a race is never stored: it is replayed from the runs in the study, so an
interrupted race resumes by training only the (ramp, seed) pairs it still lacks, and the
same runs always give the same verdict. Its error rates are those of a group-sequential
design fixed before it starts:

- every look but the last tests at 99.9% (Haybittle-Peto) and the last gets what they left
  of the race's 5% (alpha spending: 95.3% for 6 seeds, four looks), so the false claims of
  all looks together stay within 5% (simulated on equal ramps: benchmarks/README.md) and
  looking once a round costs about one point of power;
- K leaders compared with one paper's ramp are K tests: every level is Bonferroni-corrected
  to 1 − (1 − level)/K, so the chance that any leader is falsely called better or worse
  stays within the stated rate, whichever leader the race reports.

``benchmarks/bench_race.py`` simulates these rates, the alternatives and their power side by
side; ``tests/test_race_rates.py`` holds them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..study.objective import Objective
from .paired import BETTER, LEVEL, WORSE, PairedDifference, paired_difference

MIN_SEEDS = 3  # the first look: three paired seeds (two degrees of freedom)

# The level of every look before the last (Haybittle-Peto). Looking at 95% once a round and
# stopping at the first separation claims a difference between equal ramps in ~15% of
# 6-seed races; 99% early looks still ~7% two-sided; 99.9% keeps the race at one test's 5%
# and, simulated, loses about one point of power (benchmarks/README.md).
INTERIM_LEVEL = 0.999


@dataclass(frozen=True)
class RaceRules:
    """A race's design, fixed when it starts."""

    seeds: tuple[int, ...]            # the race's seeds, in the order they are given
    max_trainings: int | None = None  # stop before a round that would exceed this
    comparisons: int = 1              # leaders compared with the paper's ramp (Bonferroni)
    margin: float | None = None       # equivalence margin, in the objective's units
    interim_level: float = INTERIM_LEVEL  # every look but the last
    level: float = LEVEL                  # the whole race's: 1 − its two-sided error rate

    def corrected(self, level: float) -> float:
        """``level`` for one of ``comparisons`` tests: 1 − (1 − level)/K."""
        return 1 - (1 - level) / max(1, self.comparisons)

    @property
    def looks(self) -> int:
        return max(1, len(self.seeds) - MIN_SEEDS + 1)

    @property
    def final_level(self) -> float:
        """The last look's level: what the interim looks left of the race's error rate
        (alpha spending: the false claims of all looks together stay within 1 − level)."""
        spent = (1 - self.interim_level) * (self.looks - 1)
        return min(self.interim_level, 1 - max(0.0, (1 - self.level) - spent))

    def look_level(self, seeds_used: int) -> float:
        """The corrected level of the look at ``seeds_used`` seeds."""
        last = seeds_used >= len(self.seeds)
        return self.corrected(self.final_level if last else self.interim_level)

    @property
    def verdict_level(self) -> float:
        return self.corrected(self.final_level)


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
        missing = [(k, s) for k in state.survivors for s in used if s not in scores.get(k, {})]
        if missing:
            if over_trainings(scores, contestants, rules, len(missing)):
                state.finished = True
                state.reason = (f"the next round would exceed the {rules.max_trainings} "
                                f"race trainings allowed")
            break  # this round is not complete yet
        if any(scores[paper][s] is None for s in used):
            state.finished, state.reason = True, "the paper's ramp failed to train"
            break
        state.rounds = size
        play_round(state, scores, paper, used, objective, rules.look_level(size),
                   rules.verdict_level)
        if state.finished:
            break
    else:
        if state.rounds == len(rules.seeds) and not state.finished:
            state.finished = True
            state.reason = f"reached the most seeds allowed ({len(rules.seeds)})"
    return state


def over_trainings(scores: Mapping[Hashable, Mapping[int, float | None]],
                   contestants: Sequence[Hashable], rules: RaceRules, needed: int) -> bool:
    """Whether ``needed`` more trainings would exceed the race's ``max_trainings``."""
    if rules.max_trainings is None:
        return False
    done = sum(1 for k in contestants for s in scores.get(k, {}) if s in rules.seeds)
    return done + needed > rules.max_trainings


def play_round(state: RaceState, scores: Mapping[Hashable, Mapping[int, float | None]],
               paper: Hashable, used: Sequence[int], objective: Objective,
               level: float, interval_level: float = LEVEL) -> None:
    """Compare every survivor with the round's best; drop those worse at ``level``, and end
    the race when the best is separated at ``level`` from the paper's ramp and the rest.
    The history records each survivor's interval to the paper's ramp at ``interval_level``
    (the verdict's)."""
    runs = {k: {s: float(scores[k][s]) for s in used} for k in state.survivors}
    means = {k: float(np.mean(list(v.values()))) for k, v in runs.items()}
    best = max(means, key=lambda k: objective.sign() * means[k])
    state.best = best
    for key in list(state.survivors):
        against_best = paired_difference(runs[key], runs[best], objective.maximize, level)
        against_paper = paired_difference(runs[key], runs[paper], objective.maximize,
                                          interval_level)
        dropped = key != paper and key != best and against_best.verdict == WORSE
        state.history.append({
            "round": len(used) - MIN_SEEDS + 1, "seeds": len(used), "contestant": key,
            "level": level,
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
                           level).verdict in (BETTER, WORSE):
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
             contestants: Sequence[Hashable], paper: Hashable, objective: Objective,
             rules: RaceRules | None = None) -> dict[Hashable, PairedDifference]:
    """Each leader's paired difference to the paper's ramp over all the seeds both have, with
    the design's equivalence margin, at its corrected final level once the race is finished,
    and at the early looks' level before (an unfinished race is an interim look). Without
    ``rules``: one leader at 95%, no margin."""
    rules = rules or RaceRules(())
    level = rules.verdict_level if state.finished else rules.corrected(rules.interim_level)
    def finite(key: Hashable) -> dict[int, float]:
        return {s: float(v) for s, v in scores.get(key, {}).items()
                if v is not None and math.isfinite(v)}

    paper_runs = finite(paper)
    return {key: paired_difference(finite(key), paper_runs, objective.maximize,
                                   level, rules.margin)
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
