"""The budget against a space: does it fit, does it bind, and which preset it suits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from iformer import PRESET_NAMES

from .budget import Budget, format_flops
from .errors import SpaceError
from .load import load_space
from .space import SearchSpace

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class BudgetCheck:
    """The exact FLOPs range of a space, whether the budget cuts into it, and a note."""

    min_flops: int
    max_flops: int
    binds: bool
    note: str


def preset_ranges(family: str, img_size: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Exact (min, max) FLOPs of the built-in ``family`` space on every preset."""
    ranges = {}
    for short in PRESET_NAMES:
        space = load_space(family, base=f"iformer_{short}")
        ranges[space.base_name] = space.flops_range(img_size)
    return ranges


def choose_base(budget: Budget, family: str = "monotone") -> str:
    """The preset whose ``family`` ramps span the budget (the largest if several)."""
    ranges = preset_ranges(family, budget.img_size)
    fits = [name for name, (low, high) in ranges.items() if low <= budget.flops <= high]
    if fits:
        return max(fits, key=lambda name: ranges[name][1])
    spans = "; ".join(f"{name} {format_flops(low)} to {format_flops(high)}"
                      for name, (low, high) in ranges.items())
    raise SpaceError(f"no iFormer preset has {family} ramps that cost {format_flops(budget.flops)} "
                     f"at {_hw_text(budget)}: {spans}. Choose a budget inside one of these "
                     f"ranges, or pass --base with a model config of your own.")


def base_for(base: str | None, budget: Budget | None, family: str = "monotone") -> str:
    """The model to search on: ``base`` when one is given, else the preset whose ``family``
    ramps span the budget, else (no budget to span) iformer_small, the paper's main model."""
    if base:
        return base
    return choose_base(budget, family) if budget is not None else "iformer_small"


def check_budget(space: SearchSpace, budget: Budget) -> BudgetCheck:
    """Refuses a budget below the cheapest ramp (naming the range and a preset that fits);
    a budget at or above the dearest ramp is allowed, with a note that it does not bind."""
    low, high = space.flops_range(budget.img_size)
    where = f"space {space.name!r} on {space.base_name} at {_hw_text(budget)}"
    if budget.flops < low:
        other = _preset_for(budget, space.family)
        fix = (f"{other} fits this budget (pass --base {other}), or raise the budget to at "
               f"least {format_flops(low)}." if other else
               f"No preset fits it; raise the budget to at least {format_flops(low)} or pass a "
               f"smaller model config as --base.")
        raise SpaceError(f"budget {format_flops(budget.flops)} is below every ramp of {where}: "
                         f"its ramps cost {format_flops(low)} to {format_flops(high)}. {fix}")
    if budget.flops >= high:
        other = _preset_for(budget, space.family)
        hint = (f"; {other} spans this budget, pass --base {other} to search there"
                if other and other != space.base_name else "")
        return BudgetCheck(low, high, False,
                           f"budget {format_flops(budget.flops)} does not bind: every ramp of "
                           f"{where} costs at most {format_flops(high)}{hint}.")
    return BudgetCheck(low, high, True,
                       f"budget {format_flops(budget.flops)} binds: ramps of {where} cost "
                       f"{format_flops(low)} to {format_flops(high)}.")


def _preset_for(budget: Budget, family: str) -> str | None:
    try:
        return choose_base(budget, family)
    except SpaceError:
        return None


def _hw_text(budget: Budget) -> str:
    return f"{budget.img_size[0]}x{budget.img_size[1]}"
