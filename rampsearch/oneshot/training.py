"""Training the weight-sharing supernet on the proxy data, through the one engine.

The supernet sees exactly a stand-alone proxy trial's batches (``proxy_batches``: the same
images, order, augmentation and seed), its optimizer and schedule (AdamW with the same
weight-decay groups, warmup and cosine decay), only for ``SupernetSettings.epochs``. What
differs is the model the engine trains, :class:`RampSampledSupernet`: each training forward
asks the sampler for the step's ramps and runs the supernet once per ramp; and the
optimizer, :class:`SlotMaskedAdamW`, which moves only the slots those ramps used.

A checkpoint (model, optimizer, schedule, sampler and torch RNG state, epoch) is written
atomically after every epoch; training again with the same path continues after the last
epoch written and ends with the weights an uninterrupted run ends with.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn

from iformer import IFormerConfig
from iformer.supernet import IFormerSupernet
from search_spaces import Budget, SearchSpace

from ..data import ProxyData
from ..errors import UserError
from ..training.engine import EpochMetrics, TrainingPlan, TrainResult, run_training
from ..training.proxy import (
    ProxySettings,
    cpu_threads,
    fit_data,
    proxy_batches,
    proxy_model_config,
    proxy_schedule,
    seeded,
)
from .optimizer import SlotMaskCache, SlotMaskedAdamW
from .sampling import RampSampler
from .settings import SupernetSettings

CHECKPOINT_FORMAT = 1
SCORING_ONLY = ("score_samples",)  # supernet settings that do not change its training


class RampSampledSupernet(nn.Module):
    """The supernet as the engine trains it. In training, each forward runs the subnets of
    the step's ramps (``sampler.next_ramps()``, the teacher's first when distilling) and
    returns their logits stacked, (ramps, batch, classes); ``step_ramps`` keeps them for
    the optimizer. In evaluation it is the subnet of ``report_ramp``."""

    def __init__(self, supernet: IFormerSupernet, sampler: RampSampler,
                 report_ramp: Sequence[int], teacher_ramp: Sequence[int] | None = None) -> None:
        super().__init__()
        self.supernet = supernet
        self.sampler = sampler
        self.report_ramp = list(report_ramp)
        self.teacher_ramp = None if teacher_ramp is None else list(teacher_ramp)
        self.step_ramps: list[list[int]] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.supernet.set_ramp(self.report_ramp)(inputs)
        ramps = self.sampler.next_ramps()
        if self.teacher_ramp is not None and ramps[0] != self.teacher_ramp:
            ramps = [self.teacher_ramp] + ramps
        self.step_ramps = ramps
        return torch.stack([self.supernet.set_ramp(ramp)(inputs) for ramp in ramps])


class SubnetsLoss(nn.Module):
    """The mean loss of a step's subnets. Without distillation each is label-smoothed
    cross-entropy on the labels; with it, the first (the teacher) is, and the others are the
    cross-entropy to the teacher's detached predictions."""

    def __init__(self, label_smoothing: float, distillation: bool) -> None:
        super().__init__()
        self.labels = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.distillation = distillation

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 2:  # one subnet
            return self.labels(logits, targets)
        if not self.distillation:
            return torch.stack([self.labels(subnet, targets) for subnet in logits]).mean()
        teacher = logits[0]
        soft = teacher.detach().softmax(dim=-1)
        losses = [self.labels(teacher, targets)] + [
            -(soft * F.log_softmax(student, dim=-1)).sum(dim=-1).mean()
            for student in logits[1:]]
        return torch.stack(losses).mean()


@dataclass
class SupernetRun:
    """A trained supernet (its subnet set to the report ramp), the engine's result of this
    call (``history`` holds the epochs of this call only), the sampler's final state and the
    process CPU-seconds this call took."""

    supernet: IFormerSupernet
    result: TrainResult
    sampler: RampSampler
    cpu_s: float
    resumed_from_epoch: int
    total_cpu_s: float = 0.0  # the training's CPU-seconds over every call, checkpoints included


def supernet_schedule(proxy: ProxySettings, settings: SupernetSettings) -> ProxySettings:
    """The proxy settings with the supernet's epochs; warmup keeps its length in steps (at
    most half the schedule)."""
    return dataclasses.replace(proxy, epochs=settings.epochs,
                               warmup_epochs=min(proxy.warmup_epochs, settings.epochs / 2))


def slot_masked_adamw(supernet: IFormerSupernet, proxy: ProxySettings,
                      used_slots: Callable[[], Any]) -> SlotMaskedAdamW:
    """AdamW with the parameter groups the stand-alone proxy uses (timm's: no decay for
    norms, biases and position embeddings), moving only each step's slots."""
    reference = create_optimizer_v2(supernet, opt="adamw", lr=proxy.lr,
                                    weight_decay=proxy.weight_decay)
    groups = [{"params": group["params"], "weight_decay": group["weight_decay"]}
              for group in reference.param_groups]
    return SlotMaskedAdamW(groups, used_slots, lr=proxy.lr,
                           betas=reference.defaults["betas"], eps=reference.defaults["eps"])


def train_supernet(base: IFormerConfig, space: SearchSpace, budget: Budget | None,
                   data: ProxyData, proxy: ProxySettings, settings: SupernetSettings,
                   checkpoint: Path | None = None,
                   on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
                   device: str | None = None, num_threads: int | None = None) -> SupernetRun:
    """Train the supernet of ``base`` (full size; the proxy's width and resolution apply) on
    ramps of ``space`` within ``budget``.

    ``checkpoint``: written after every epoch; when it exists, training continues from it
    (it must come from the same settings). ``on_epoch`` is called after each epoch's
    evaluation (of the base's own ramp) and checkpoint; True stops the run.
    """
    proxy.validate()
    settings.validate()
    data = fit_data(data, proxy)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model_config = proxy_model_config(base, proxy, data.num_classes)
    schedule = supernet_schedule(proxy, settings)
    identity = checkpoint_identity(space, budget, proxy, settings)
    cpu_started = time.process_time()
    with cpu_threads(num_threads), seeded(proxy.seed, target):
        train_batches, val_batches = proxy_batches(data, schedule, target)  # a trial's own
        supernet = IFormerSupernet(model_config).to(device=target,
                                                    memory_format=torch.channels_last)
        sampler = RampSampler(space, budget, settings.strategy, proxy.seed,
                              settings.random_ramps)
        teacher = sampler.largest_attention_ramp() if settings.distillation else None
        model = RampSampledSupernet(supernet, sampler, base.attention_heads, teacher)
        masks = SlotMaskCache(supernet)
        optimizer = slot_masked_adamw(supernet, proxy, lambda: masks.used_by(model.step_ramps))
        scheduler = proxy_schedule(optimizer, schedule)
        start_epoch, earlier_cpu_s = 0, 0.0
        if checkpoint is not None and checkpoint.exists():
            start_epoch, earlier_cpu_s = load_checkpoint(checkpoint, identity, supernet, optimizer, scheduler,
                                          sampler, target)
            for epoch in range(start_epoch):  # the batch generator continues where it was
                for _ in train_batches(epoch):
                    pass
        plan = TrainingPlan(
            model=model, optimizer=optimizer, scheduler=scheduler,
            train_loss=SubnetsLoss(proxy.label_smoothing, settings.distillation),
            train_batches=train_batches, val_batches=val_batches, epochs=schedule.epochs,
            device=target, autocast_dtype=torch.bfloat16 if target.type == "cuda" else None,
            start_epoch=start_epoch, start_updates=start_epoch * schedule.steps_per_epoch)

        def after_epoch(metrics: EpochMetrics) -> bool | None:
            if checkpoint is not None:
                save_checkpoint(checkpoint, identity, metrics.epoch, supernet, optimizer,
                                earlier_cpu_s + time.process_time() - cpu_started,
                                scheduler, sampler)
            return on_epoch(metrics) if on_epoch is not None else None

        result = run_training(plan, after_epoch)
    result.extra.update(strategy=settings.strategy, epochs=settings.epochs,
                        resumed_from_epoch=start_epoch, device=str(target))
    cpu_s = time.process_time() - cpu_started
    return SupernetRun(supernet, result, sampler, cpu_s, start_epoch, earlier_cpu_s + cpu_s)


# --------------------------------------------------------------------------- checkpoint
def checkpoint_identity(space: SearchSpace, budget: Budget | None, proxy: ProxySettings,
                        settings: SupernetSettings) -> dict[str, Any]:
    """What a checkpoint must have been trained with to be continued (how its ramps are
    scored, ``score_samples``, is not part of it)."""
    training = {key: value for key, value in settings.to_dict().items()
                if key not in SCORING_ONLY}
    return {"space": space.name, "base": space.base_name,
            "budget_flops": None if budget is None else budget.flops,
            "budget_img_size": None if budget is None else list(budget.img_size),
            "proxy": proxy.to_dict(), "supernet": training}


def save_checkpoint(path: Path, identity: dict[str, Any], epoch: int,
                    supernet: IFormerSupernet, optimizer: torch.optim.Optimizer,
                    cpu_s: float, scheduler: CosineLRScheduler, sampler: RampSampler) -> None:
    """The state after ``epoch`` epochs (``cpu_s``: the CPU-seconds they took), written to a temporary file and renamed over
    ``path``, so a kill mid-write leaves the previous epoch's checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, "identity": identity, "epoch": epoch,
             "cpu_s": float(cpu_s), "model": supernet.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(),
             "torch_rng": torch.get_rng_state()}
    partial = path.with_name(f".{path.name}.partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_checkpoint(path: Path, identity: dict[str, Any], supernet: IFormerSupernet,
                    optimizer: torch.optim.Optimizer, scheduler: CosineLRScheduler,
                    sampler: RampSampler, device: torch.device) -> tuple[int, float]:
    """Restore everything ``save_checkpoint`` wrote; the number of epochs done and the
    CPU-seconds they took."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: pickle, zip or torch errors
        raise UserError(f"the supernet checkpoint {path} is unreadable ({exc.__class__.__name__}"
                        f"); delete it to train the supernet from the start.") from None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("identity") != identity:
        stored = state.get("identity") or {}
        differences = [f"{key}: {stored.get(key)!r} there, {value!r} here"
                       for key, value in identity.items() if stored.get(key) != value]
        raise UserError(f"the supernet checkpoint {path} was trained with other settings "
                        f"({'; '.join(differences) or 'another format'}); train with the same "
                        f"settings to continue it, or give another checkpoint path.")
    supernet.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.load_state_dict(state["sampler"])
    torch.set_rng_state(state["torch_rng"].cpu())
    return int(state["epoch"]), float(state.get("cpu_s", 0.0))
