"""The score a study optimises and ranks by, and which way is better.

Every trial records both its final validation cross-entropy (``val_loss``) and its top-1; the
study's objective is one of them. Validation loss is the default because it ranks ramps far
more reproducibly than top-1 on the same trials (docs/fidelity.md): top-1 counts only which
side of the decision boundary each image falls, so a short schedule's seed noise moves it in
steps, while the loss sees every image's confidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..attributes import Attr
from ..errors import UserError


@dataclass(frozen=True)
class Objective:
    """One score: its trial attribute, how to show it, and its direction."""

    key: str          # the trial attribute holding the final score (Attr.VAL_LOSS, Attr.TOP1)
    title: str        # column and axis title
    unit: str         # appended to numbers: "" or "%"
    maximize: bool
    digits: int       # decimals to print

    @property
    def direction(self) -> str:
        return "maximize" if self.maximize else "minimize"

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.maximize else a < b

    def best(self, values: Iterable[float]) -> float:
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return math.nan
        return max(finite) if self.maximize else min(finite)

    def sign(self) -> int:
        """+1 when higher is better, -1 when lower is: ``sign * (a - b) > 0`` means a is
        better than b."""
        return 1 if self.maximize else -1

    def format(self, value: float | None, signed: bool = False) -> str:
        if value is None or not math.isfinite(value):
            return "-"
        return f"{value:{'+' if signed else ''}.{self.digits}f}{self.unit}"


# Keys as plain strings: they are also option values, column names and Ray Tune's metric.
OBJECTIVES: dict[str, Objective] = {objective.key: objective for objective in (
    Objective(Attr.VAL_LOSS.value, "val loss", "", maximize=False, digits=4),
    Objective(Attr.TOP1.value, "top-1", "%", maximize=True, digits=2),
)}
DEFAULT_OBJECTIVE = Attr.VAL_LOSS.value
# Studies made before the objective was a setting optimised top-1.
LEGACY_OBJECTIVE = Attr.TOP1.value


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise UserError(f"--objective {name!r} is not known; choose one of "
                        f"{', '.join(OBJECTIVES)} (val_loss ranks ramps most reliably).") from None


def objective_of(objectives: list[str] | None) -> Objective:
    """The objective of a study from its stored objective list (first entry)."""
    return get_objective((objectives or [LEGACY_OBJECTIVE])[0])


def format_number(value: Any, spec: str) -> str:
    """``value`` in ``spec`` (".2f"), or "-" where there is none (None or NaN)."""
    if value is None or math.isnan(float(value)):
        return "-"
    return format(float(value), spec)
