"""The study's bookkeeping of trials, apart from how they are executed (Ray lives in
``rampsearch.search``): what a job to train is. Importing it never imports Ray, so ranking,
reporting and exporting a study do not either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FixedJob:
    """A ramp to train that the sampler did not propose: a baseline, or a re-evaluation."""

    role: str                      # "baseline" | "reeval"
    label: str                     # baseline name, or "#<source trial> seed <s>"
    ramp: list[int]
    seed: int | None = None        # None: the proxy's own seed
    attrs: dict[str, Any] | None = None   # extra user attributes of the trial


@dataclass(frozen=True)
class Job:
    """One ramp handed from the searcher to a Ray trial."""

    number: int          # Optuna trial number
    ramp: list[int]
    role: str            # "candidate" | "baseline" | "reeval"
    label: str
    seed: int | None = None
