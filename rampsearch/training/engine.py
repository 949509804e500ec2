"""The one training engine: epochs of optimizer steps, evaluation, a callback, NaN detection.

A recipe (the proxy recipe in ``rampsearch.proxy``, the full ImageNet recipe in
``rampsearch.train``) builds a :class:`TrainingPlan`: the model, optimizer, scheduler and loss,
plus two functions that yield batches already on the device. The engine does not know where
batches come from; it runs the loop below, the same for every recipe:

    for each epoch from start_epoch:
        for each training batch: forward (autocast), loss, backward, step, schedule
        evaluate: loss, top-1, top-5 over the validation batches (a NaN loss ends the run)
        evaluate the EMA weights too, when the plan has them
        step the schedule to the next epoch
        on_epoch(metrics) -> True stops the run; checkpoints and logs live there
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attributes import Status

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets), both on the device

# How often the running training loss is checked for NaN/inf. Checking means waiting for the
# device, so on a GPU it is not done every step; a diverged run wastes at most this many.
FINITE_CHECK_STEPS = 16


@dataclass
class EpochMetrics:
    """One epoch: top-1/top-5 in percent, losses per sample, ``elapsed_s`` since the start
    of training, ``images_per_s`` of the training phase alone."""

    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    top1: float
    top5: float
    elapsed_s: float
    images_per_s: float
    lr: float = 0.0  # at the end of the epoch
    ema_val_loss: float | None = None  # the EMA weights' evaluation; None without EMA
    ema_top1: float | None = None
    ema_top5: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """How a run ended and the metrics of its last evaluation.

    ``status`` is 'completed' (all epochs), 'stopped' (``on_epoch`` returned True) or
    'diverged' (a NaN or infinite loss; ``reason`` says where, and top1/top5 are 0 because
    the weights are unusable).
    """

    status: str
    reason: str
    epochs_run: int
    history: list[EpochMetrics]
    top1: float
    top5: float
    val_loss: float
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)  # recipe facts: params, flops, ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: non-finite floats become None."""
        data = asdict(self)
        data["val_loss"] = _finite_or_none(self.val_loss)
        data["history"] = [{k: _finite_or_none(v) for k, v in h.to_dict().items()}
                           for h in self.history]
        return data


@dataclass
class TrainingPlan:
    """Everything a recipe hands the engine. The last four fields serve long runs: resume,
    an EMA of the weights, and DDP (the recipe's ``model`` is then the wrapped one)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    train_loss: nn.Module  # (logits, targets) -> mean loss; targets as train_batches yields
    train_batches: Callable[[int], Iterable[Batch]]  # 0-based epoch -> batches
    val_batches: Callable[[], Iterable[Batch]]  # targets are class indices
    epochs: int
    device: torch.device
    scheduler: Any = None  # a timm Scheduler: step(epoch) and step_update(num_updates)
    autocast_dtype: torch.dtype | None = None  # bf16 on CUDA; None runs in float32
    grad_clip: float | None = None
    start_epoch: int = 0  # epochs already done by a resumed run; the loop continues after them
    start_updates: int = 0  # the optimizer steps of those epochs, for a per-step schedule
    ema_model: nn.Module | None = None  # updated by the recipe (an optimizer hook), evaluated here
    # All-reduce sum over the processes of a DDP run; None in a single process.
    sum_over_processes: Callable[[list[float]], list[float]] | None = None


class Diverged(Exception):
    """Raised inside the loop when the loss stops being finite; turned into a status."""


def run_training(plan: TrainingPlan,
                 on_epoch: Callable[[EpochMetrics], bool | None] | None = None) -> TrainResult:
    """Train epochs ``start_epoch + 1`` to ``plan.epochs``, evaluating after each and calling
    ``on_epoch``. ``history`` holds the epochs of this call only."""
    started = time.perf_counter()
    history: list[EpochMetrics] = []
    status, reason = Status.COMPLETED, ""
    num_updates = plan.start_updates
    for epoch in range(plan.start_epoch, plan.epochs):
        try:
            train_loss, images, num_updates, train_s = train_one_epoch(plan, epoch, num_updates)
            val_loss, top1, top5 = evaluate(plan, plan.model)
            if not math.isfinite(val_loss):
                raise Diverged(f"validation loss became {val_loss} after epoch {epoch + 1}")
        except Diverged as exc:
            status, reason = Status.DIVERGED, str(exc)
            break
        ema_loss = ema_top1 = ema_top5 = None
        if plan.ema_model is not None:
            ema_loss, ema_top1, ema_top5 = evaluate(plan, plan.ema_model)
        metrics = EpochMetrics(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss,
                               top1=top1, top5=top5, elapsed_s=time.perf_counter() - started,
                               images_per_s=images / train_s if train_s > 0 else 0.0,
                               lr=current_lr(plan.optimizer), ema_val_loss=ema_loss,
                               ema_top1=ema_top1, ema_top5=ema_top5)
        history.append(metrics)
        if plan.scheduler is not None:
            plan.scheduler.step(epoch + 1)
        if on_epoch is not None and on_epoch(metrics):
            if epoch + 1 < plan.epochs:
                status, reason = Status.STOPPED, f"stopped by the callback after epoch {epoch + 1}"
            break
    last = history[-1] if history and status != Status.DIVERGED else None
    return TrainResult(status=status, reason=reason, epochs_run=len(history), history=history,
                       top1=last.top1 if last else 0.0, top5=last.top5 if last else 0.0,
                       val_loss=last.val_loss if last else math.nan,
                       wall_s=time.perf_counter() - started)


def train_one_epoch(plan: TrainingPlan, epoch: int,
                    num_updates: int) -> tuple[float, int, int, float]:
    """(mean training loss, images seen, updates so far, seconds) of one epoch; loss and
    images are totals over the processes of a DDP run."""
    model, optimizer = plan.model, plan.optimizer
    model.train()
    loss_sum = torch.zeros((), device=plan.device)
    images = steps = 0
    started = time.perf_counter()
    for inputs, targets in plan.train_batches(epoch):
        with autocast(plan):
            loss = plan.train_loss(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if plan.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), plan.grad_clip)
        optimizer.step()
        num_updates += 1
        if plan.scheduler is not None:
            plan.scheduler.step_update(num_updates=num_updates)
        loss_sum += loss.detach().float() * inputs.shape[0]
        images += inputs.shape[0]
        steps += 1
        if steps % FINITE_CHECK_STEPS == 0 or plan.device.type == "cpu":
            check_finite(loss_sum, epoch, steps, optimizer)
    check_finite(loss_sum, epoch, steps, optimizer)
    synchronize(plan.device)
    seconds = time.perf_counter() - started
    loss_total, images = summed(plan, [loss_sum.item(), images])
    return loss_total / max(images, 1), int(images), num_updates, seconds


@torch.inference_mode()
def evaluate(plan: TrainingPlan, model: nn.Module) -> tuple[float, float, float]:
    """(mean cross-entropy, top-1 %, top-5 %) of ``model`` over the validation batches (of
    all processes)."""
    model.eval()
    loss_sum = torch.zeros((), device=plan.device, dtype=torch.float64)
    correct1 = torch.zeros((), device=plan.device, dtype=torch.int64)
    correct5 = torch.zeros((), device=plan.device, dtype=torch.int64)
    count = 0
    for inputs, targets in plan.val_batches():
        with autocast(plan):
            logits = model(inputs)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hits = top == targets[:, None]
        correct1 += hits[:, 0].sum()
        correct5 += hits.any(dim=1).sum()
        count += targets.shape[0]
    loss_total, hits1, hits5, count = summed(plan, [loss_sum.item(), correct1.item(),
                                                    correct5.item(), count])
    if count == 0:
        raise ValueError("the validation set is empty")
    return loss_total / count, 100.0 * hits1 / count, 100.0 * hits5 / count


def summed(plan: TrainingPlan, values: list[float]) -> list[float]:
    """``values`` summed over the processes of a DDP run; as they are in a single process."""
    if plan.sum_over_processes is None:
        return values
    return plan.sum_over_processes(values)


def check_finite(loss_sum: torch.Tensor, epoch: int, step: int,
                 optimizer: torch.optim.Optimizer) -> None:
    if not torch.isfinite(loss_sum).item():
        raise Diverged(f"training loss became {loss_sum.item()} in epoch {epoch + 1} by step "
                       f"{step} (learning rate {current_lr(optimizer):.3g}); lower --lr or "
                       f"raise the warmup")


def autocast(plan: TrainingPlan) -> contextlib.AbstractContextManager:
    if plan.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=plan.device.type, dtype=plan.autocast_dtype)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
