"""The words a study's trials are recorded with: how a training ended and what a trial is.

Both are ``str`` enums, so they are stored in Optuna's user attributes, CSV files and pandas
frames as their plain values ('completed', 'candidate', ...) and compare equal to them.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """How a training ended."""

    COMPLETED = "completed"      # every epoch of its schedule
    STOPPED = "stopped"          # stopped early by a scheduler or a callback
    DIVERGED = "diverged"        # its loss stopped being finite: the ramp's own failure
    FAILED = "failed"            # an exception in the model or its data: the ramp's own
    WORKER_LOST = "worker_lost"  # its Ray worker died: the infrastructure's, retried

    __str__ = str.__str__


class Role(str, Enum):
    """What a trial of a study is."""

    CANDIDATE = "candidate"      # proposed by the sampler
    BASELINE = "baseline"        # the paper's ramp or an ablation, trained like a candidate
    REJECTED = "rejected"        # proposed over the budget: never trained
    REEVAL = "reeval"            # a race run of a leader or the paper's ramp, another seed
    FIDELITY = "fidelity"        # a run of `rampsearch fidelity`

    __str__ = str.__str__


PAPER = "baseline:paper"  # the leaderboard's role label of the paper's ramp
