"""The ``smooth`` family: a sigmoid of C_h/C over depth, from four parameters.

``high_first`` and ``high_last`` are C_h/C at the first and the last block, ``midpoint`` is
where over depth (0..1) the change is fastest and ``steepness`` how fast it is (0: a straight
line). Block b at depth t = b / (blocks - 1) gets

    C_h/C = first + (last - first) * (sig(k (t - m)) - sig(-k m)) / (sig(k (1 - m)) - sig(-k m))

rounded half up to whole heads, then clamped to the block's bounds (fixed blocks keep their
value). Each parameter is an Optuna float on a grid (``SmoothOptions``), so the space is a
finite set of ramps: it is enumerated once, which makes its size, FLOPs range, feasible
fraction and encoding exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .budget import Budget
from .errors import SpaceError
from .space import ImgSize, ParamSource, SearchSpace, image_hw
from .spec import SmoothOptions

PARAMS = ("high_first", "high_last", "midpoint", "steepness")


@dataclass(frozen=True)
class Enumeration:
    """Every grid point's ramp, deduplicated."""

    ramps: np.ndarray          # (distinct ramps, blocks)
    ramp_of_point: np.ndarray  # grid shape -> index into ramps
    first_point: np.ndarray    # per ramp, the first flat grid index that gives it


class SmoothSpace(SearchSpace):
    family = "smooth"

    def __init__(self, options: SmoothOptions | None = None, **common: Any) -> None:
        super().__init__(**common)
        options = options or SmoothOptions()
        self.options = options
        self.grids = (
            _grid(0.0, 1.0, options.ratio_step), _grid(0.0, 1.0, options.ratio_step),
            _grid(0.0, 1.0, options.midpoint_step),
            _grid(0.0, options.max_steepness, options.steepness_step))
        self.steps = (options.ratio_step, options.ratio_step, options.midpoint_step,
                      options.steepness_step)
        self._enumeration: Enumeration | None = None
        self._lookup: dict[tuple[int, ...], int] | None = None
        self._ramp_flops: dict[tuple[int, int], np.ndarray] = {}
        self._masks: dict[tuple[int, tuple[int, int]], tuple[np.ndarray, ...]] = {}

    def param_names(self) -> list[str]:
        return list(PARAMS)

    # ------------------------------------------------------------------ the grid
    def ramps_of(self, first: np.ndarray, last: np.ndarray, midpoint: np.ndarray,
                 steepness: np.ndarray) -> np.ndarray:
        """Ramps for broadcastable parameter arrays; the result has one more axis, blocks."""
        blocks = self.num_blocks
        depth = np.arange(blocks) / max(blocks - 1, 1)
        k, m = steepness[..., None], midpoint[..., None]
        with np.errstate(over="ignore"):
            start, end = _sigmoid(-k * m), _sigmoid(k * (1 - m))
            shape = (_sigmoid(k * (depth - m)) - start) / np.where(k > 0, end - start, 1.0)
        shape = np.where(k > 0, shape, depth)
        high = first[..., None] + (last - first)[..., None] * shape
        heads_per_stage = np.array([s.num_heads for s in self.base.blocks()])
        # Round C_h to whole heads half up; the epsilon keeps 0.35 * 10 from landing below 3.5.
        heads = heads_per_stage - np.floor(high * heads_per_stage + 0.5 + 1e-9).astype(np.int64)
        low = np.array([b[0] for b in self.bounds])
        top = np.array([b[1] for b in self.bounds])
        return np.clip(heads, low, top)  # fixed blocks have low == top

    def _enumerate(self) -> Enumeration:
        if self._enumeration is None:
            axes = np.meshgrid(*[np.array(g) for g in self.grids], indexing="ij")
            rows = np.ascontiguousarray(self.ramps_of(*axes).reshape(-1, self.num_blocks),
                                        dtype=np.int16)
            # One opaque key per row: 30x faster to deduplicate than np.unique(axis=0).
            keys = rows.view(np.dtype((np.void, rows.itemsize * self.num_blocks))).ravel()
            _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            shape = tuple(len(g) for g in self.grids)
            self._enumeration = Enumeration(rows[first].astype(np.int64),
                                            inverse.reshape(shape), first)
        return self._enumeration

    def distinct_ramps(self) -> np.ndarray:
        """Every ramp of the space, one row each."""
        return self._enumerate().ramps

    def size(self) -> int:
        return len(self._enumerate().ramps)

    def _ramp_index(self, ramp: Sequence[int]) -> int | None:
        if self._lookup is None:
            self._lookup = {tuple(int(v) for v in r): i
                            for i, r in enumerate(self._enumerate().ramps)}
        try:
            key = tuple(int(v) for v in ramp)
        except (TypeError, ValueError):
            return None
        return self._lookup.get(key) if list(key) == list(ramp) else None

    def contains(self, ramp: Sequence[int]) -> bool:
        return len(ramp) == self.num_blocks and self._ramp_index(ramp) is not None

    def encode(self, ramp: Sequence[int]) -> dict[str, Any] | None:
        if not self.contains(ramp):
            return None
        enumeration = self._enumerate()
        point = np.unravel_index(enumeration.first_point[self._ramp_index(ramp)],
                                 enumeration.ramp_of_point.shape)
        return {name: self.grids[p][int(i)] for p, (name, i) in enumerate(zip(PARAMS, point))}

    # -------------------------------------------------------------------- drawing
    def _draw(self, source: ParamSource, budget: Budget | None) -> tuple[list[int], bool]:
        masks = self._feasible_masks(budget) if budget is not None else None
        point: list[int] = []
        repaired = False
        for p, name in enumerate(PARAMS):
            grid = self.grids[p]
            first, last = 0, len(grid) - 1
            if masks is not None:
                allowed = np.flatnonzero(masks[p][tuple(point)])
                if len(allowed):  # empty: an earlier pick fell in a gap; rejected later
                    first, last = int(allowed[0]), int(allowed[-1])
                    repaired |= (first, last) != (0, len(grid) - 1)
            value = source.suggest_float(name, grid[first], grid[last], step=self.steps[p])
            index = round((value - grid[0]) / self.steps[p])
            if not 0 <= index < len(grid) or abs(grid[index] - value) > 1e-6 * self.steps[p]:
                raise SpaceError(f"parameter {name} = {value} is not on its grid "
                                 f"{grid[0]:g}..{grid[-1]:g} in steps of {self.steps[p]:g}.")
            point.append(index)
        ramp_index = self._enumerate().ramp_of_point[tuple(point)]
        return [int(v) for v in self._enumerate().ramps[ramp_index]], repaired

    def _feasible_masks(self, budget: Budget) -> tuple[np.ndarray, ...]:
        """masks[p][i_0..i_{p-1}]: which values of parameter p still allow a feasible ramp."""
        key = (budget.flops, image_hw(budget.img_size))
        if key not in self._masks:
            enumeration = self._enumerate()
            feasible = self._flops_of_ramps(budget.img_size) <= budget.flops
            full = feasible[enumeration.ramp_of_point]
            masks = [full]
            for axis in range(len(PARAMS) - 1, 0, -1):
                masks.insert(0, masks[0].any(axis=axis))
            if len(self._masks) >= 8:  # a search uses one budget; keep a few, not all
                self._masks.clear()
            self._masks[key] = tuple(masks)
        return self._masks[key]

    # -------------------------------------------------------------------- pricing
    def _flops_of_ramps(self, img_size: ImgSize) -> np.ndarray:
        key = image_hw(img_size)
        if key not in self._ramp_flops:
            table = self.cost_table(key)
            ramps = self._enumerate().ramps
            flops = np.full(len(ramps), table.fixed, dtype=np.int64)
            for block, costs in enumerate(table.per_block):
                flops += np.array(costs, dtype=np.int64)[ramps[:, block]]
            self._ramp_flops[key] = flops
        return self._ramp_flops[key]

    def flops_range(self, img_size: ImgSize = (224, 224)) -> tuple[int, int]:
        flops = self._flops_of_ramps(img_size)
        return int(flops.min()), int(flops.max())

    def feasible_fraction(self, budget: Budget) -> tuple[float, bool]:
        """Exact: the share of the enumerated distinct ramps within the budget."""
        return float(np.mean(self._flops_of_ramps(budget.img_size) <= budget.flops)), True


def _grid(low: float, high: float, step: float) -> tuple[float, ...]:
    count = round((high - low) / step)
    return tuple(round(low + i * step, 10) for i in range(count + 1))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
