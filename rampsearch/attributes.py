"""The words a study is recorded with: how a training ended, what a trial is, and the keys of
every trial and study user attribute.

All are ``str`` enums, so they are stored in Optuna's user attributes, CSV files and pandas
frames as their plain values ('completed', 'candidate', 'top1', ...), compare and hash equal
to them, and look up the attributes of studies written before they existed.
"""

from __future__ import annotations

from enum import Enum, unique


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


@unique  # one key, one member: an alias would read another attribute
class Attr(str, Enum):
    """The keys of a trial's user attributes (read by rank, report, export and fidelity)."""

    # What the trial trains. search_spaces' ``propose`` writes a candidate's RAMP and FLOPS
    # under these same names.
    ROLE = "role"                    # a Role
    BASELINE = "baseline"            # the baseline's name, for a Role.BASELINE trial
    RAMP = "ramp"                    # attention heads per block
    FLOPS = "flops"                  # FLOPs of the full-size ramp at the budget's resolution
    PARAMS = "params"                # parameters of the full-size model
    HIGH_RATIOS = "high_ratios"      # C_h/C per block, rounded to 4 decimals
    WITHIN_BUDGET = "within_budget"  # whether FLOPS is within the study's budget
    PROXY = "proxy"                  # the ProxySettings it trains with, as a mapping
    SEED = "seed"                    # the training seed of a job with its own (race, fidelity)
    REPAIRED = "repaired"            # True: the space moved the sampler's proposal into budget
    REQUEUED_FROM = "requeued_from"  # the trial whose ramp it trains again (interrupted, lost)
    RAY_TRIAL_ID = "ray_trial_id"    # the Ray Tune trial that trains it
    ATTEMPT = "attempt"              # 1 for a job's first training in a run, 2 for its retry
    # How its training ended.
    STATUS = "status"                # a Status
    END_REASON = "end_reason"        # why it ended, in words (INTERRUPTED: its driver died)
    FAILURE = "failure"              # whose failure: "ramp" or "infrastructure"
    EPOCHS_REACHED = "epochs_reached"  # epochs trained
    WALL_S = "wall_s"                # training wall time in seconds
    TOP1 = "top1"                    # final validation top-1, %
    TOP5 = "top5"                    # final validation top-5, %
    VAL_LOSS = "val_loss"            # final validation cross-entropy
    # A race run (Role.REEVAL).
    SOURCE_TRIAL = "source_trial"    # the search trial whose ramp it trains again
    SOURCE_ROLE = "source_role"      # that trial's leaderboard role
    REEVAL_EPOCHS = "reeval_epochs"  # the race's epochs per training (its fidelity)
    # A fidelity run (Role.FIDELITY).
    FIDELITY_SETTING = "fidelity_setting"  # the setting that trains it: proxy, ..., reference
    RAMP_LABEL = "ramp_label"        # the baseline's name, or sampled_<i>
    CPUS = "cpus"                    # CPUs it ran on (for CPU-minutes)
    # Where its score comes from: "supernet" (its subnet's, weights inherited from a trained
    # supernet, rampsearch.oneshot); absent: its own stand-alone training.
    SCORE_SOURCE = "score_source"
    SCORE_IMAGES = "score_images"    # validation images a supernet score was measured on
    DUPLICATE_OF = "duplicate_of"    # the trial that scored the same ramp first (its score)
    # A fidelity run scored by a supernet: the CPU-seconds its supernet's training took.
    SUPERNET_TRAIN_CPU_S = "supernet_train_cpu_s"

    __str__ = str.__str__


@unique
class StudyAttr(str, Enum):
    """The keys of a study's user attributes."""

    SETTINGS = "rampsearch"          # the StudySettings: what the study measures
    RACE = "race"                    # what its last race raced (its runs hold the results)
    FIDELITY = "fidelity"            # `rampsearch fidelity`: its proxies and zero-cost scores
    SUPERNET = "supernet"            # the SupernetSettings its supernet-scored trials used

    __str__ = str.__str__


INTERRUPTED = "interrupted"  # the END_REASON of a trial whose driver died while it trained
PAPER = "baseline:paper"  # the leaderboard's role label of the paper's ramp
