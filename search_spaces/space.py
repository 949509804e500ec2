"""The interface every ramp parameterisation implements, and what they share.

A *ramp* is the list of ``attention_heads``, one per block (0 <= a <= num_heads of its
stage; C_h/C = 1 - a/n). A space turns Optuna parameters into a ramp (define-by-run), turns
a ramp back into parameters (to enqueue it), and knows its size and its exact FLOPs range.
FLOPs are a sum over blocks, which is what makes budget checks exact and instant.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import iformer
from iformer import IFormerConfig, RampCostTable

from .budget import Budget
from .errors import SpaceError

if TYPE_CHECKING:
    import optuna

ImgSize = int | tuple[int, int]

# Key of the same number in Optuna's own constraint store (Trial.set_constraint).
CONSTRAINT_KEY = "flops"


class ParamSource(Protocol):
    """Where parameter values come from: an ``optuna.Trial``, or the stand-ins below."""

    def suggest_int(self, name: str, low: int, high: int) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *,
                      step: float | None = None) -> float: ...


class RandomParams:
    """Uniform draws from a seeded ``random.Random``: sampling without Optuna's bookkeeping."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def suggest_float(self, name: str, low: float, high: float, *,
                      step: float | None = None) -> float:
        if step is None:
            return self.rng.uniform(low, high)
        return low + self.rng.randint(0, round((high - low) / step)) * step


class GivenParams:
    """Answers with the values of a parameter dict, e.g. a finished trial's ``params``."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise SpaceError(f"parameter {name!r} is missing; a ramp of this space needs "
                             f"every one of its parameters.")
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return self._get(name)

    def suggest_float(self, name: str, low: float, high: float, *,
                      step: float | None = None) -> float:
        return self._get(name)


@dataclass(frozen=True)
class Proposal:
    """A ramp drawn under a budget. ``feasible``: its FLOPs are within the budget (only such
    ramps may be trained). ``repaired``: the budget narrowed the range of at least one
    parameter while it was drawn (the parameters still describe this very ramp)."""

    ramp: list[int]
    flops: int
    feasible: bool
    repaired: bool


class SearchSpace:
    """A set of ramps of one base config, with Optuna parameters that spell them.

    Subclasses implement :meth:`_draw`, :meth:`encode`, :meth:`contains`, :meth:`size`,
    :meth:`param_names`, :meth:`flops_range` and :meth:`feasible_fraction`.
    """

    family: str = ""

    def __init__(self, name: str, base: IFormerConfig, base_name: str, allow_ends: bool,
                 bounds: Sequence[tuple[int, int]], fixed: Mapping[int, int],
                 description: str = "") -> None:
        self.name = name
        self.base = base
        self.base_name = base_name
        self.allow_ends = allow_ends
        self.bounds = tuple(bounds)   # (min, max) attention heads of every block
        self.fixed = dict(fixed)      # block -> attention heads, not searched
        self.description = description
        self.num_blocks = len(self.bounds)
        self._cost_tables: dict[tuple[int, int], RampCostTable] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.family}) on {self.base_name}>"

    # ------------------------------------------------------------------- per family
    def _draw(self, source: ParamSource, budget: Budget | None) -> tuple[list[int], bool]:
        """Draw a ramp from ``source``. With a budget, each parameter's range is narrowed to
        the values that still have a completion within it (exactly). Returns the ramp and
        whether any range was narrowed."""
        raise NotImplementedError

    def encode(self, ramp: Sequence[int]) -> dict[str, Any] | None:
        """Parameters for ``study.enqueue_trial`` so that :meth:`suggest` returns exactly
        ``ramp``; None if the space does not contain it."""
        raise NotImplementedError

    def contains(self, ramp: Sequence[int]) -> bool:
        raise NotImplementedError

    def size(self) -> int:
        """The exact number of distinct ramps."""
        raise NotImplementedError

    def param_names(self) -> list[str]:
        """Names of the Optuna parameters a trial of this space has, in suggestion order."""
        raise NotImplementedError

    def flops_range(self, img_size: ImgSize = (224, 224)) -> tuple[int, int]:
        """Exact (cheapest, dearest) FLOPs over the ramps of the space."""
        raise NotImplementedError

    def feasible_fraction(self, budget: Budget) -> tuple[float, bool]:
        """The share of the space's ramps within ``budget``, and whether it is exact (True)
        or a Monte-Carlo estimate (False)."""
        raise NotImplementedError

    # --------------------------------------------------------------------- shared
    def suggest(self, trial: optuna.Trial | ParamSource) -> list[int]:
        """Define-by-run: suggest this space's parameters on ``trial`` and return the ramp."""
        return self._draw(trial, None)[0]

    def decode(self, params: Mapping[str, Any]) -> list[int]:
        """The ramp that a trial's ``params`` spell (raises SpaceError if they spell none)."""
        return self._draw(GivenParams(params), None)[0]

    def propose(self, trial: optuna.Trial, budget: Budget) -> Proposal:
        """A ramp for ``trial`` under ``budget``, *repaired by construction*.

        Each parameter is suggested on a range narrowed to the values whose cheapest
        completion still fits the budget (exact: FLOPs add up over blocks). The parameters
        are the ramp itself, so what Optuna records is what gets trained, and almost every
        proposal is feasible. A proposal can still come back infeasible (to be rejected,
        never trained) when the feasible values of a parameter are not contiguous and the
        sampler picks one in a gap, or when the trial was enqueued with an over-budget ramp
        (Optuna keeps enqueued values as given, with a warning that they are out of range;
        evaluate hand-designed reference ramps through :meth:`suggest` instead).

        Records user attributes ``ramp`` and ``flops``, and flops - budget (<= 0 is feasible)
        as Optuna's own trial constraint ``flops``, which constraint-aware samplers read.
        """
        ramp, repaired = self._draw(trial, budget)
        flops = self.cost_table(budget.img_size).flops(ramp)
        excess = float(flops - budget.flops)
        trial.set_user_attr("ramp", ramp)
        trial.set_user_attr("flops", flops)
        trial.set_constraint(CONSTRAINT_KEY, excess)
        return Proposal(ramp, flops, flops <= budget.flops, repaired)

    def sample(self, rng: random.Random, budget: Budget | None = None) -> Proposal:
        """What :meth:`propose` does, with uniform draws from ``rng`` instead of a trial."""
        ramp, repaired = self._draw(RandomParams(rng), budget)
        if budget is None:
            return Proposal(ramp, self.cost_table().flops(ramp), True, False)
        flops = self.cost_table(budget.img_size).flops(ramp)
        return Proposal(ramp, flops, flops <= budget.flops, repaired)

    def cost_table(self, img_size: ImgSize = (224, 224)) -> RampCostTable:
        """FLOPs of every block at every head count at ``img_size`` (cached)."""
        key = image_hw(img_size)
        if key not in self._cost_tables:
            self._cost_tables[key] = iformer.ramp_cost_table(self.base, key)
        return self._cost_tables[key]

    def flops(self, ramp: Sequence[int], img_size: ImgSize = (224, 224)) -> int:
        """FLOPs of the base with ``ramp`` (any valid ramp of the base, in the space or not)."""
        if len(ramp) != self.num_blocks:
            raise SpaceError(f"the ramp has {len(ramp)} entries but {self.base_name} has "
                             f"{self.num_blocks} blocks; give one attention-head count per "
                             f"block.")
        table = self.cost_table(img_size)
        for block, (heads, costs) in enumerate(zip(ramp, table.per_block)):
            if not 0 <= heads < len(costs):
                raise SpaceError(f"block {block} of the ramp asks for {heads} attention heads "
                                 f"but its stage has {len(costs) - 1}; use 0 to "
                                 f"{len(costs) - 1}.")
        return table.flops(ramp)

    def min_flops(self, img_size: ImgSize = (224, 224)) -> int:
        return self.flops_range(img_size)[0]

    def max_flops(self, img_size: ImgSize = (224, 224)) -> int:
        return self.flops_range(img_size)[1]

    def baselines(self) -> dict[str, list[int]]:
        """Hand-designed ramps of the base, whether or not this space contains them."""
        return baseline_ramps(self.base)


def baseline_ramps(config: IFormerConfig) -> dict[str, list[int]]:
    """``paper``: the base's own ramp (the paper's, for a preset). ``equal_split``: C_h = C_l
    (n // 2 attention heads; the high-frequency side gets the odd head). ``reverse_ramp``: C_h
    and C_l swapped in every block (n - a heads), so C_h/C rises with depth as fast as the
    paper's falls (the reverse ramp of the paper's Table 5). ``all_attention_but_one``: n - 1
    heads. ``one_attention_head``: 1 head."""
    heads = [spec.num_heads for spec in config.blocks()]
    return {
        "paper": list(config.attention_heads),
        "equal_split": [n // 2 for n in heads],
        "reverse_ramp": [n - a for a, n in zip(config.attention_heads, heads)],
        "all_attention_but_one": [max(n - 1, 0) for n in heads],
        "one_attention_head": [min(1, n) for n in heads],
    }


def image_hw(img_size: ImgSize) -> tuple[int, int]:
    """224 or (224, 224) to (224, 224)."""
    if isinstance(img_size, int):
        return img_size, img_size
    height, width = img_size
    return int(height), int(width)
