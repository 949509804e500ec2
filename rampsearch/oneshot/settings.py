"""How a supernet trains and scores: :class:`SupernetSettings`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..training.fields import check_ranges, settings_from_mapping
from .sampling import STRATEGIES


@dataclass
class SupernetSettings:
    """The supernet's own settings; data, width, resolution, batch, optimizer, schedule and
    seed are the proxy's (``ProxySettings``), so its batches are a stand-alone trial's.

    ``strategy`` chooses each step's ramps (``rampsearch.oneshot.sampling``). ``epochs``
    replaces the proxy's: a supernet shares its steps among many ramps. ``random_ramps`` is
    the sandwich rule's uniform ramps a step beside the two extremes. ``distillation``: the
    largest-attention ramp also trains every step on the labels, and the step's other ramps
    learn its (detached) predictions instead (BigNAS's in-place distillation); it is off
    until measured to help. ``score_samples``: the validation images every ramp is scored
    on, the first of the proxy's (0: all of them); 500 by default, so that scoring 1,000
    ramps fits a 20-minute search on 2 cores (a score over Imagenette's 2,000 proxy images
    costs 3.1 CPU-s at 64 px; how much ranking the smaller set costs is measured in
    docs/oneshot.md)."""

    strategy: str = "fair"
    epochs: int = 4
    random_ramps: int = 2
    distillation: bool = False
    score_samples: int = 500

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SupernetSettings:
        return settings_from_mapping(cls, data, "supernet")

    def validate(self) -> None:
        """Raise UserError naming the first setting out of range and what to use instead."""
        checks = [
            (self.strategy in STRATEGIES, "strategy", f"one of {', '.join(STRATEGIES)}"),
            (self.epochs >= 1, "epochs", "at least 1"),
            (self.random_ramps >= 0, "random_ramps", "0 or more uniform ramps a sandwich step"),
            (isinstance(self.distillation, bool), "distillation", "true or false"),
            (self.score_samples >= 0, "score_samples",
             "0 (all validation images) or a positive count"),
        ]
        check_ranges(self, checks, where="supernet setting")
