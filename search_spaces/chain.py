"""Spaces that pick head counts one decision after another: ``free``, ``monotone`` and
``stagewise``.

A decision sets the attention heads of one or more blocks (one block for free and monotone,
the searched blocks of a stage for stagewise; a fixed block is a decision with one value).
Monotone couples neighbours: C_h/C may never rise with depth, i.e. a/n never falls, so the
smallest value allowed after ``x`` heads of ``n`` at a block with ``m`` heads is
ceil(x * m / n). Because that lower bound only grows with ``x``, every count, cheapest and
dearest completion below is a suffix minimum, maximum or sum over the next decision's values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from iformer import IFormerConfig

from .budget import Budget
from .errors import SpaceError
from .space import ImgSize, ParamSource, SearchSpace, image_hw

# No completion exists: larger than any FLOPs count, and still an exact integer.
NO_COMPLETION = 1 << 62
# Above this many grid cells the exact count would take over a second: estimate instead.
EXACT_WORK_LIMIT = 300_000_000
MONTE_CARLO_SAMPLES = 20_000


@dataclass(frozen=True)
class Decision:
    """Sets ``blocks`` to one head count in ``low..high``; ``name`` is its Optuna parameter
    (unused when low == high, e.g. a fixed block)."""

    name: str
    blocks: tuple[int, ...]
    num_heads: int
    low: int
    high: int


@dataclass(frozen=True)
class ChainPricing:
    """FLOPs of a chain at one input size, indexed [decision][value - decision.low]."""

    fixed: int                               # stem, transitions, head: independent of the ramp
    costs: tuple[tuple[int, ...], ...]       # the decision's blocks at each value
    cheapest: tuple[tuple[int, ...], ...]    # cheapest completion from here (NO_COMPLETION)
    dearest: tuple[tuple[int, ...], ...]     # dearest completion from here (-NO_COMPLETION)


class ChainSpace(SearchSpace):
    """Free, monotone or stagewise ramps: a chain of decisions, optionally monotone."""

    def __init__(self, family: str, decisions: Sequence[Decision], monotone: bool,
                 **common: Any) -> None:
        super().__init__(**common)
        self.family = family
        self.decisions = tuple(decisions)
        self.monotone = monotone
        self._floors = self._next_lower_bounds()
        self._caps = self._largest_completable()
        self._pricings: dict[tuple[int, int], ChainPricing] = {}
        self._counts: tuple[tuple[int, ...], ...] | None = None

    # ------------------------------------------------------------------ structure
    def _next_lower_bounds(self) -> tuple[tuple[int, ...], ...]:
        """floors[d][i]: the least value decision d+1 may take after value low_d + i."""
        floors = []
        for here, after in zip(self.decisions, self.decisions[1:]):
            values = range(here.low, here.high + 1)
            if self.monotone:
                # Capped at high + 1, which means "no value fits".
                floors.append(tuple(
                    min(max(after.low, -(-x * after.num_heads // here.num_heads)), after.high + 1)
                    for x in values))
            else:
                floors.append((after.low,) * len(values))
        return tuple(floors)

    def _largest_completable(self) -> tuple[int, ...]:
        """caps[d]: the largest value of decision d that some ramp of the space continues."""
        caps = [self.decisions[-1].high]
        for d in range(len(self.decisions) - 2, -1, -1):
            here, floors = self.decisions[d], self._floors[d]
            cap = next((x for x in range(here.high, here.low - 1, -1)
                        if floors[x - here.low] <= caps[0]), None)
            if cap is None:
                raise _empty(here)
            caps.insert(0, cap)
        if caps[0] < self.decisions[0].low:
            raise _empty(self.decisions[0])
        return tuple(caps)

    def param_names(self) -> list[str]:
        return [d.name for d in self.decisions if d.low < d.high]

    def _width(self, d: int) -> int:
        """How many values of decision d some ramp uses."""
        return self._caps[d] - self.decisions[d].low + 1

    # -------------------------------------------------------------------- drawing
    def _draw(self, source: ParamSource, budget: Budget | None) -> tuple[list[int], bool]:
        pricing = self._pricing(budget.img_size) if budget is not None else None
        room = budget.flops - pricing.fixed if pricing is not None else 0
        ramp = [0] * self.num_blocks
        repaired = False
        low = self.decisions[0].low
        for d, decision in enumerate(self.decisions):
            high = self._caps[d]
            first, last = low, high
            if pricing is not None:
                # Narrow to the values whose cheapest completion fits what is left.
                offset = decision.low
                within = narrowed(pricing.cheapest[d], first - offset, last - offset, room)
                if within is not None:  # None: an earlier pick fell in a gap; rejected later
                    first, last = within[0] + offset, within[1] + offset
                    repaired |= (first, last) != (low, high)
            if decision.low < decision.high:
                value = source.suggest_int(decision.name, first, last)
                if not low <= value <= high:
                    raise SpaceError(f"parameter {decision.name} = {value} is outside "
                                     f"{low}..{high}, the values this space allows there.")
            else:
                value = decision.low
            for block in decision.blocks:
                ramp[block] = value
            index = value - decision.low
            if pricing is not None:
                room -= pricing.costs[d][index]
            if d + 1 < len(self.decisions):
                low = self._floors[d][index]
        return ramp, repaired

    def encode(self, ramp: Sequence[int]) -> dict[str, Any] | None:
        if not self.contains(ramp):
            return None
        return {d.name: int(ramp[d.blocks[0]]) for d in self.decisions if d.low < d.high}

    def contains(self, ramp: Sequence[int]) -> bool:
        if len(ramp) != self.num_blocks:
            return False
        try:
            values = [int(v) for v in ramp]
        except (TypeError, ValueError):
            return False
        if values != list(ramp):
            return False
        low = self.decisions[0].low
        for d, decision in enumerate(self.decisions):
            value = values[decision.blocks[0]]
            if any(values[b] != value for b in decision.blocks):
                return False
            if not low <= value <= self._caps[d]:
                return False
            if d + 1 < len(self.decisions):
                low = self._floors[d][value - decision.low]
        return True

    # ------------------------------------------------------------------- counting
    def _completion_counts(self) -> tuple[tuple[int, ...], ...]:
        """counts[d][i]: ramps completing decisions d.. from value low_d + i (exact ints)."""
        if self._counts is None:
            counts = [(1,) * self._width(len(self.decisions) - 1)]
            for d in range(len(self.decisions) - 2, -1, -1):
                after = self.decisions[d + 1]
                suffix = _suffix(counts[0], sum, 0)
                counts.insert(0, tuple(suffix[self._floors[d][i] - after.low]
                                       for i in range(self._width(d))))
            self._counts = tuple(counts)
        return self._counts

    def size(self) -> int:
        return sum(self._completion_counts()[0])

    # -------------------------------------------------------------------- pricing
    def _pricing(self, img_size: ImgSize) -> ChainPricing:
        key = image_hw(img_size)
        if key not in self._pricings:
            self._pricings[key] = self._price(key)
        return self._pricings[key]

    def _price(self, img_size: tuple[int, int]) -> ChainPricing:
        table = self.cost_table(img_size)
        costs = tuple(
            tuple(sum(table.per_block[b][x] for b in d.blocks) for x in range(d.low, d.high + 1))
            for d in self.decisions)
        last = len(self.decisions) - 1
        cheapest = [_beyond(costs[last], self._width(last), NO_COMPLETION)]
        dearest = [_beyond(costs[last], self._width(last), -NO_COMPLETION)]
        for d in range(last - 1, -1, -1):
            after = self.decisions[d + 1]
            least = _suffix(cheapest[0], min, NO_COMPLETION)
            most = _suffix(dearest[0], max, -NO_COMPLETION)
            floors, width = self._floors[d], self._width(d)
            cheapest.insert(0, tuple(
                c + least[floors[i] - after.low] if i < width else NO_COMPLETION
                for i, c in enumerate(costs[d])))
            dearest.insert(0, tuple(
                c + most[floors[i] - after.low] if i < width else -NO_COMPLETION
                for i, c in enumerate(costs[d])))
        return ChainPricing(table.fixed, costs, tuple(cheapest), tuple(dearest))

    def flops_range(self, img_size: ImgSize = (224, 224)) -> tuple[int, int]:
        pricing = self._pricing(img_size)
        return pricing.fixed + min(pricing.cheapest[0]), pricing.fixed + max(pricing.dearest[0])

    def feasible_fraction(self, budget: Budget, *, exact_work_limit: int = EXACT_WORK_LIMIT,
                          samples: int = MONTE_CARLO_SAMPLES, seed: int = 0) -> tuple[float, bool]:
        """Exact by dynamic programming over decisions on a FLOPs grid whose unit is the
        greatest common divisor of all cost differences (so no rounding happens); a
        Monte-Carlo estimate over uniformly drawn ramps when that grid would be too fine."""
        low, high = self.flops_range(budget.img_size)
        if budget.flops < low:
            return 0.0, True
        if budget.flops >= high:
            return 1.0, True
        within = self._count_within(budget, exact_work_limit)
        if within is not None:
            return min(1.0, within / self.size()), True
        flops = self._uniform_flops(budget.img_size, samples, np.random.default_rng(seed))
        return float(np.mean(flops <= budget.flops)), False

    def _count_within(self, budget: Budget, work_limit: int) -> float | None:
        """How many ramps cost at most the budget (as a float), or None if too much work."""
        pricing = self._pricing(budget.img_size)
        costs = [pricing.costs[d][:self._width(d)] for d in range(len(self.decisions))]
        least = [min(c) for c in costs]
        grid = 0
        for c, m in zip(costs, least):
            for value in c:
                grid = math.gcd(grid, value - m)
        cells = (budget.flops - pricing.fixed - sum(least)) // max(grid, 1) + 1
        if cells <= 0:
            return 0.0
        if grid == 0:  # every ramp costs the same
            return float(self.size())
        steps = [[(v - m) // grid for v in c] for c, m in zip(costs, least)]
        cells = min(cells, sum(max(s) for s in steps) + 1)
        if sum(len(s) for s in steps) * cells > work_limit:
            return None
        if not self.monotone:
            return _count_independent(steps, cells)
        return self._count_monotone(steps, cells)

    def _count_monotone(self, steps: list[list[int]], cells: int) -> float:
        """counts[i, c]: prefixes ending at value low_d + i whose cost is c grid steps above
        the sum of minima; moved forward one decision at a time."""
        counts = np.zeros((len(steps[0]), cells))
        for i, step in enumerate(steps[0]):
            if step < cells:
                counts[i, step] = 1.0
        for d in range(1, len(steps)):
            floors, after_low = self._floors[d - 1], self.decisions[d].low
            # Value j here follows values i with floors[i] <= low + j: a prefix of i, growing
            # with j, so one running sum over i serves every j.
            moved = np.zeros((len(steps[d]), cells))
            through = np.zeros(cells)
            i = 0
            for j, step in enumerate(steps[d]):
                while i < len(counts) and floors[i] - after_low <= j:
                    through += counts[i]
                    i += 1
                if i and step < cells:
                    moved[j, step:] = through[:cells - step]
            counts = moved
        return float(counts.sum())

    def _uniform_flops(self, img_size: tuple[int, int], samples: int,
                       rng: np.random.Generator) -> np.ndarray:
        """FLOPs of ``samples`` ramps drawn uniformly from the space."""
        pricing = self._pricing(img_size)
        counts = self._completion_counts()
        flops = np.full(samples, pricing.fixed, dtype=np.int64)
        chosen = np.zeros(samples, dtype=np.int64)
        for d in range(len(self.decisions)):
            weights = np.array([float(c) for c in counts[d]])
            cost = np.array(pricing.costs[d][:self._width(d)], dtype=np.int64)
            if d == 0:
                groups = {0: np.arange(samples)}
                starts = {0: 0}
            else:
                floors, low = self._floors[d - 1], self.decisions[d].low
                groups = {int(i): np.flatnonzero(chosen == i) for i in np.unique(chosen)}
                starts = {i: floors[i] - low for i in groups}
            picked = np.zeros(samples, dtype=np.int64)
            for i, rows in groups.items():
                tail = weights[starts[i]:]
                picked[rows] = starts[i] + rng.choice(len(tail), size=len(rows),
                                                      p=tail / tail.sum())
            flops += cost[picked]
            chosen = picked
        return flops


def narrowed(totals: Sequence[int], first: int, last: int,
             limit: int) -> tuple[int, int] | None:
    """The smallest index range within first..last that holds every index whose total is at
    most ``limit``; None if there is none."""
    while first <= last and totals[first] > limit:
        first += 1
    while last >= first and totals[last] > limit:
        last -= 1
    return (first, last) if first <= last else None


def _empty(decision: Decision) -> SpaceError:
    return SpaceError(
        f"the space has no ramp: with at least {decision.low} of {decision.num_heads} attention "
        f"heads at block {decision.blocks[0]}, a later block would need more heads than its "
        f"bounds allow to keep C_h/C from rising; widen the stage bounds, allow the ends or "
        f"change the fixed blocks.")


def _count_independent(steps: list[list[int]], cells: int) -> float:
    counts = np.zeros(cells)
    counts[0] = 1.0
    for options in steps:
        moved = np.zeros(cells)
        for step in options:
            if step < cells:
                moved[step:] += counts[:cells - step]
        counts = moved
    return float(counts.sum())


def _suffix(values: Sequence[int], combine: Any, empty: int) -> list[int]:
    """suffix[i] = combine(values[i:]); suffix[len] = empty."""
    out = [empty] * (len(values) + 1)
    for i in range(len(values) - 1, -1, -1):
        out[i] = combine((values[i], out[i + 1]))
    return out


def _beyond(costs: Sequence[int], width: int, missing: int) -> tuple[int, ...]:
    """Costs of the values below ``width``; ``missing`` for values no ramp uses."""
    return tuple(c if i < width else missing for i, c in enumerate(costs))


# ----------------------------------------------------------------------------- families
def block_decisions(base: IFormerConfig, bounds: Sequence[tuple[int, int]],
                    fixed: Mapping[int, int]) -> list[Decision]:
    """One decision per block, named ``b07_s3`` (block 7, stage 3)."""
    width = max(2, len(str(len(bounds) - 1)))
    decisions = []
    for spec, (low, high) in zip(base.blocks(), bounds):
        if spec.index in fixed:
            low = high = fixed[spec.index]
        decisions.append(Decision(f"b{spec.index:0{width}d}_s{spec.stage}", (spec.index,),
                                  spec.num_heads, low, high))
    return decisions


def stage_decisions(base: IFormerConfig, bounds: Sequence[tuple[int, int]],
                    fixed: Mapping[int, int]) -> list[Decision]:
    """One decision per stage over its unfixed blocks, named ``stage3_heads``; fixed blocks
    are decisions of their own."""
    decisions = []
    for stage in range(1, len(base.depths) + 1):
        specs = [s for s in base.blocks() if s.stage == stage]
        searched = tuple(s.index for s in specs if s.index not in fixed)
        if searched:
            low, high = bounds[searched[0]]
            decisions.append(Decision(f"stage{stage}_heads", searched, specs[0].num_heads,
                                      low, high))
        for s in specs:
            if s.index in fixed:
                decisions.append(Decision(f"b{s.index:02d}_s{stage}", (s.index,), s.num_heads,
                                          fixed[s.index], fixed[s.index]))
    return sorted(decisions, key=lambda d: d.blocks[0])
