"""Search spaces over the iFormer frequency ramp, the FLOPs budget and exact feasibility.

A ramp is the per-block ``attention_heads`` list of an iFormer (C_h/C = 1 - a/n). Spaces
(``free``, ``monotone``, ``stagewise``, ``smooth``) are YAML files; ``load_space`` reads a
built-in one or a user's. FLOPs add up over blocks, so every budget check here is exact.
Depends on ``iformer`` only (Optuna is used through the trial objects passed in).
"""

from __future__ import annotations

from .budget import Budget, format_flops, parse_budget
from .chain import ChainSpace, Decision
from .errors import SpaceError
from .feasibility import BudgetCheck, base_for, check_budget, choose_base, preset_ranges
from .load import build_space, load_space, space_names
from .smooth import SmoothSpace
from .space import (
    CONSTRAINT_KEY,
    Proposal,
    RandomParams,
    SearchSpace,
    baseline_ramps,
)
from .spec import FAMILIES, SmoothOptions, SpaceFile, StageBounds, read_space_file

__all__ = [
    "CONSTRAINT_KEY", "FAMILIES", "Budget", "BudgetCheck", "ChainSpace",
    "Decision", "Proposal", "RandomParams", "SearchSpace", "SmoothOptions", "SmoothSpace",
    "SpaceError", "SpaceFile", "StageBounds", "baseline_ramps", "build_space", "check_budget",
    "base_for", "choose_base", "format_flops", "load_space", "parse_budget",
    "preset_ranges", "read_space_file", "space_names",
]
