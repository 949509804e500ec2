"""The FLOPs budget: parsing what a user writes, and printing FLOPs back.

One multiply-add counts as one flop, as in the iFormer paper (and fvcore), so ``4.8GFLOPs``
and ``4.8GMACs`` are the same budget.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import SpaceError

PREFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}

BUDGET_SYNTAX = ("write a number with an optional T, G, M or K prefix and an optional FLOPs or "
                 "MACs unit, e.g. 4.8GFLOPs, 4.8 GFLOPs, 4800MFLOPs, 4.8G or 4.8e9 (one "
                 "multiply-add counts as one flop, as in the paper)")

_BUDGET_PATTERN = re.compile(
    r"""^\s*
    (?P<number>(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)
    \s*(?P<prefix>[kmgt]?)
    \s*(?P<unit>flops?|macs?)?
    \s*$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class Budget:
    """At most ``flops`` multiply-adds for one image of ``img_size`` (height, width)."""

    flops: int
    img_size: tuple[int, int] = (224, 224)
    text: str = ""

    def __str__(self) -> str:
        height, width = self.img_size
        return f"{format_flops(self.flops)} at {height}x{width}"


def parse_budget(text: str, img_size: int | tuple[int, int] = 224) -> Budget:
    """``4.8GFLOPs``, ``4.8 GFLOPs``, ``4.8G``, ``4800MFLOPs``, ``4.8e9``, ``4.8GMACs`` (prefix
    and unit case-insensitive) to a :class:`Budget` at ``img_size``; anything else is a
    :class:`SpaceError`."""
    if not isinstance(text, str) or not text.strip():
        raise SpaceError(f"the FLOPs budget is empty; {BUDGET_SYNTAX}.")
    stripped = text.strip()
    match = _BUDGET_PATTERN.match(stripped)
    if match is None:
        raise SpaceError(f"budget {stripped!r} is not a FLOPs count: {_why_not(stripped)}; "
                         f"{BUDGET_SYNTAX}.")
    value = float(match["number"]) * PREFIXES[match["prefix"].lower()]
    if not math.isfinite(value):
        raise SpaceError(f"budget {stripped!r} is too large to be a FLOPs count; {BUDGET_SYNTAX}.")
    flops = round(value)
    if flops < 1:
        what = "is zero" if value == 0 else "is less than one flop"
        raise SpaceError(f"budget {stripped!r} {what}; a FLOPs budget must be positive, e.g. "
                         f"4.8GFLOPs.")
    return Budget(flops=flops, img_size=_img_size(img_size), text=stripped)


def _why_not(text: str) -> str:
    """The likeliest reason a budget did not parse, for the error message."""
    if text.startswith("-"):
        return "it is negative, and a budget must be positive"
    if "," in text:
        return "it has a comma (use a dot for decimals and no thousands separators)"
    unit = re.sub(r"^[\d_.eE+\s]*[kKmMgGtT]?\s*", "", text)
    if re.match(r"^[\d_.]", text) and unit:
        return f"its unit {unit!r} is not FLOPs or MACs"
    return "it does not start with a number"


def _img_size(img_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(img_size, int) and not isinstance(img_size, bool):
        size = (img_size, img_size)
    else:
        try:
            height, width = img_size
            size = (int(height), int(width))
        except (TypeError, ValueError):
            raise SpaceError(f"budget resolution {img_size!r} is not an image size; give one "
                             f"number (224) or (height, width).") from None
    if min(size) < 1:
        raise SpaceError(f"budget resolution {img_size!r} is not positive; use e.g. 224.")
    return size


def format_flops(flops: float) -> str:
    """``4848476928`` to ``'4.848 GFLOPs'`` (three decimals, the largest prefix below it)."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(flops) >= scale:
            return f"{flops / scale:.3f} {prefix}FLOPs"
    return f"{flops:.0f} FLOPs"
