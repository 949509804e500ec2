"""The supernet as a scorer under test in a fidelity study: which (setting, seed) supernets
a study still lacks, where each one's checkpoint lives, and recording its subnets' scores
of the study's ramps as fidelity runs, so every table ranks them as it ranks a proxy.

A supernet run trains on the first proxy setting's data and batches with the proxy seed
of its own seed index (the batches of that proxy seed), then scores every ramp of the
study. Its CPU time per ramp is stated as in a one-shot search that scores
AMORTISED_OVER ramps: the scoring of the ramp plus that share of the supernet's training.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

import iformer
from search_spaces import Budget, SearchSpace

from ..attributes import Attr, Role, Status
from ..oneshot import SupernetSettings
from ..oneshot.scoring import SUPERNET, RampScore
from ..oneshot.training import checkpoint_identity
from ..training.proxy import ProxySettings

AMORTISED_OVER = 1000  # ramps a one-shot search scores (its default --trials)


def supernet_name(index: int) -> str:
    """The name of the index-th --supernet setting: supernet, supernet2, ..."""
    return "supernet" if index == 0 else f"supernet{index + 1}"


@dataclass(frozen=True)
class SupernetJob:
    """One supernet to train (or continue from ``checkpoint``) and the ramps it scores."""

    name: str
    settings: SupernetSettings
    seed: int
    proxy: ProxySettings        # the first proxy setting with this seed
    ramps: dict[str, list[int]]  # label -> ramp, those without a score of this (name, seed)
    checkpoint: Path


def checkpoint_path(folder: Path, space: SearchSpace, budget: Budget | None,
                    proxy: ProxySettings, settings: SupernetSettings) -> Path:
    """Where a supernet trained with these settings is kept: named by what it was trained
    with, so settings that differ only in scoring share one."""
    identity = json.dumps(checkpoint_identity(space, budget, proxy, settings), sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return folder / "supernets" / f"supernet-{digest}-s{proxy.seed}.pt"


def supernet_jobs(study: optuna.Study, ramps: Mapping[str, Sequence[int]],
                  settings: Mapping[str, SupernetSettings], seeds: int, proxy: ProxySettings,
                  space: SearchSpace, budget: Budget | None, folder: Path) -> list[SupernetJob]:
    """Every (setting, seed) with ramps not yet scored, seed by seed."""
    from .ramps import measured

    done = measured(study)
    jobs = []
    for seed in range(seeds):
        seeded = ProxySettings.from_dict({**proxy.to_dict(), "seed": seed})
        for name, supernet in settings.items():
            missing = {label: list(ramp) for label, ramp in ramps.items()
                       if (tuple(ramp), name, seed) not in done}
            if missing:
                jobs.append(SupernetJob(name, supernet, seed, seeded, missing, checkpoint_path(
                    folder, space, budget, seeded, supernet)))
    return jobs


def record_supernet_runs(study: optuna.Study, space: SearchSpace, budget: Budget | None,
                         job: SupernetJob, scores: Sequence[RampScore], train_cpu_s: float,
                         objective: str) -> None:
    """One completed fidelity run per scored ramp, as a trained run is recorded, with
    ``score_source = supernet``, the supernet's training CPU-seconds, and as its time the
    scoring plus 1/AMORTISED_OVER of the training (on one CPU)."""
    img_size = budget.img_size if budget is not None else (224, 224)
    trials = []
    for (label, ramp), score in zip(job.ramps.items(), scores, strict=True):
        config = space.base.with_ramp(ramp)
        attrs: dict[str, Any] = {
            Attr.ROLE: Role.FIDELITY, Attr.RAMP: list(ramp), Attr.RAMP_LABEL: label,
            Attr.FIDELITY_SETTING: job.name, Attr.SEED: job.seed,
            Attr.FLOPS: space.flops(ramp, img_size), Attr.PARAMS: iformer.count_params(config),
            Attr.PROXY: job.proxy.to_dict(), Attr.SCORE_SOURCE: SUPERNET,
            Attr.STATUS: Status.COMPLETED, Attr.END_REASON: Status.COMPLETED,
            Attr.EPOCHS_REACHED: job.settings.epochs, Attr.CPUS: 1.0,
            Attr.WALL_S: round(score.cpu_s + train_cpu_s / AMORTISED_OVER, 3),
            Attr.SUPERNET_TRAIN_CPU_S: round(train_cpu_s, 1), Attr.SCORE_IMAGES: score.images,
            Attr.TOP1: score.top1, Attr.TOP5: score.top5, Attr.VAL_LOSS: score.val_loss}
        finite = math.isfinite(score.val_loss) and math.isfinite(score.top1)
        trials.append(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE if finite else optuna.trial.TrialState.FAIL,
            values=[attrs[objective]] if finite else None,  # a fidelity study: one objective
            user_attrs={str(k): v for k, v in attrs.items()}))
    study.add_trials(trials)

