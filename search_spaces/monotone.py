"""The ``monotone`` family drawn in bisection order.

Drawing monotone ramps block by block from the input side makes each block's lower bound the
previous block's ratio, so uniform draws ratchet up and almost every ramp ends with all heads
on attention. Here the middle block is drawn first, then the middles of the two halves, and
so on: every block is bounded by the nearest drawn blocks on both sides, which keeps draws
spread over the whole space (every monotone ramp is still reachable; the set is the same).

For the budget, every step knows the cheapest monotone filling of the open stretches between
drawn blocks (tables computed once per input size), so a block's range is narrowed to the
values with a completion within the budget, exactly as in the other chain families.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .budget import Budget
from .chain import NO_COMPLETION, ChainSpace, Decision, narrowed
from .errors import SpaceError
from .space import ImgSize, ParamSource, image_hw

Anchor = list[tuple[int, int]]  # the (heads, num_heads) an anchor can have, ascending


@dataclass(frozen=True)
class BisectionTables:
    """For plan step s = (d, left, right) and anchor value indices i, j:
    ``inner[s][i][j]``: cheapest monotone filling of the blocks strictly between the anchors;
    ``totals[s][i][j][x]``: the same once decision d takes its x-th value (NO_COMPLETION when
    no monotone filling exists)."""

    fixed: int
    costs: tuple[tuple[int, ...], ...]
    inner: tuple[list[list[int]], ...]
    totals: tuple[list[list[tuple[int, ...]]], ...]
    allowed: tuple[list[list[tuple[int, int]]], ...]  # [s][i][j]: index range with a filling


def bisection_plan(count: int) -> tuple[tuple[int, int, int], ...]:
    """(decision, left anchor, right anchor) in drawing order; -1 and ``count`` stand for
    the two ends (C_h/C of 1 before the first block, 0 after the last)."""
    plan, stretches = [], deque([(-1, count)])
    while stretches:
        left, right = stretches.popleft()
        if right - left >= 2:
            middle = (left + right) // 2
            plan.append((middle, left, right))
            stretches.extend([(left, middle), (middle, right)])
    return tuple(plan)


class MonotoneSpace(ChainSpace):
    """Ramps whose C_h/C never rises with depth (a/n never falls), one decision per block."""

    def __init__(self, decisions: Sequence[Decision], **common: Any) -> None:
        super().__init__("monotone", decisions, monotone=True, **common)
        self._plan = bisection_plan(len(self.decisions))
        self._bisection: dict[tuple[int, int], BisectionTables] = {}

    def param_names(self) -> list[str]:
        return [self.decisions[d].name for d, _, _ in self._plan
                if self.decisions[d].low < self.decisions[d].high]

    def _draw(self, source: ParamSource, budget: Budget | None) -> tuple[list[int], bool]:
        # Without a budget the tables still say which values have a monotone filling.
        tables = self._tables(budget.img_size if budget is not None else (224, 224))
        room = budget.flops - tables.fixed if budget is not None else 0
        chosen = [0] * (len(self.decisions) + 2)  # value index of decision d at d + 1; ends 0
        open_cost = tables.inner[0][0][0] if self._plan else 0
        repaired = False
        for step, (d, left, right) in enumerate(self._plan):
            decision = self.decisions[d]
            i, j = chosen[left + 1], chosen[right + 1]
            totals = tables.totals[step][i][j]
            elsewhere = open_cost - tables.inner[step][i][j]
            allowed = tables.allowed[step][i][j]
            first, last = allowed
            if budget is not None:
                within = narrowed(totals, first, last, room - elsewhere)
                if within is not None:  # None: an earlier pick fell in a gap; rejected later
                    repaired |= within != allowed
                    first, last = within
            if decision.low < decision.high:
                value = source.suggest_int(decision.name, decision.low + first,
                                           decision.low + last)
                index = value - decision.low
                if not allowed[0] <= index <= allowed[1]:
                    raise SpaceError(
                        f"parameter {decision.name} = {value} is outside "
                        f"{decision.low + allowed[0]}..{decision.low + allowed[1]}, the values "
                        f"that keep C_h/C from rising between the blocks drawn before it.")
            else:
                index = 0
            chosen[d + 1] = index
            room -= tables.costs[d][index]
            open_cost = elsewhere + totals[index] - tables.costs[d][index]
        ramp = [0] * self.num_blocks
        for d, decision in enumerate(self.decisions):
            for block in decision.blocks:
                ramp[block] = decision.low + chosen[d + 1]
        return ramp, repaired

    # ----------------------------------------------------------------------- tables
    def _tables(self, img_size: ImgSize) -> BisectionTables:
        key = image_hw(img_size)
        if key not in self._bisection:
            self._bisection[key] = self._build_tables(key)
        return self._bisection[key]

    def _build_tables(self, img_size: tuple[int, int]) -> BisectionTables:
        pricing = self._pricing(img_size)
        costs = pricing.costs
        stretches: dict[tuple[int, int], list[list[int]]] = {}

        def inner(left: int, right: int) -> list[list[int]]:
            if (left, right) not in stretches:
                stretches[(left, right)] = self._cheapest_filling(left, right, costs)
            return stretches[(left, right)]

        inner_tables, totals = [], []
        for d, left, right in self._plan:
            before, after = inner(left, d), inner(d, right)
            inner_tables.append(inner(left, right))
            totals.append([
                [tuple(min(NO_COMPLETION, cost + before[i][x] + after[x][j])
                       for x, cost in enumerate(costs[d]))
                 for j in range(len(self._anchor(right)))]
                for i in range(len(self._anchor(left)))])
        # Every step has a value with a filling: the anchors came from such values.
        allowed = tuple([[narrowed(row, 0, len(row) - 1, NO_COMPLETION - 1) or (0, -1)
                          for row in rows] for rows in step] for step in totals)
        return BisectionTables(pricing.fixed, costs, tuple(inner_tables), tuple(totals),
                               allowed)

    def _anchor(self, d: int) -> Anchor:
        if d < 0:
            return [(0, 1)]  # before the first block: C_l/C = 0
        if d >= len(self.decisions):
            return [(1, 1)]  # after the last block: C_l/C = 1
        decision = self.decisions[d]
        return [(x, decision.num_heads) for x in range(decision.low, decision.high + 1)]

    def _cheapest_filling(self, left: int, right: int,
                          costs: Sequence[Sequence[int]]) -> list[list[int]]:
        """[i][j]: cheapest monotone head counts for decisions left+1..right-1 between the
        i-th value of ``left`` and the j-th value of ``right`` (NO_COMPLETION: none)."""
        table = []
        for heads, num_heads in self._anchor(left):
            # best[k]: cheapest filling up to the current decision ending at its k-th value.
            values, best = [heads], [0]
            for d in range(left + 1, right):
                decision = self.decisions[d]
                prefix_min = _prefix_min(best)
                keys = [v * decision.num_heads for v in values]  # a/n <= y/m  <=>  a*m <= y*n
                best = []
                for k, y in enumerate(range(decision.low, decision.high + 1)):
                    count = bisect_right(keys, y * num_heads)
                    best.append(min(NO_COMPLETION, costs[d][k] + prefix_min[count - 1])
                                if count else NO_COMPLETION)
                values, num_heads = list(range(decision.low, decision.high + 1)), \
                    decision.num_heads
            prefix_min = _prefix_min(best)
            row = []
            for end_heads, end_num_heads in self._anchor(right):
                count = bisect_right([v * end_num_heads for v in values],
                                     end_heads * num_heads)
                row.append(prefix_min[count - 1] if count else NO_COMPLETION)
            table.append(row)
        return table


def _prefix_min(values: Sequence[int]) -> list[int]:
    out, least = [], NO_COMPLETION
    for value in values:
        least = min(least, value)
        out.append(least)
    return out
