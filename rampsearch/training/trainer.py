"""The full recipe: train an exported iFormer on an ImageFolder the way the paper trained it.

    rampsearch train train.yaml --data /path/to/imagenet [--output DIR] [--resume]
    python -m rampsearch.train train.yaml --data /path/to/imagenet
    torchrun --nproc_per_node 8 -m rampsearch.train train.yaml --data /path/to/imagenet

``train.yaml`` is what ``rampsearch export`` writes (its settings: ``rampsearch.training.recipe``). The
loop is ``rampsearch.training.engine.run_training``, the same one the proxy trials run; this module
builds its plan and adds what a 300-epoch run needs around it: timm's ImageNet data pipeline
(RandAugment, random erasing, Mixup/CutMix), an EMA of the weights, DDP under torchrun, and,
after every epoch through the engine's ``on_epoch``, ``metrics.csv`` and a checkpoint with
the best kept; ``--resume`` starts the engine at the epoch after the last checkpoint.

Every epoch reseeds the random generators from (seed, epoch, rank), so a resumed run sees the
same data order, augmentations and drop-path masks as an uninterrupted one.
"""

from __future__ import annotations

import csv
import functools
import importlib
import math
import os
import random
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

import iformer
from iformer import IFormerConfig

from ..errors import UserError
from . import engine as engine
from .recipe import TrainRecipe, paper_size

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "top1", "top5", "ema_val_loss",
                  "ema_top1", "ema_top5", "epoch_s", "images_per_s")
LAST, BEST, METRICS = "last.pth", "best.pth", "metrics.csv"


# ------------------------------------------------------------------------------ processes
@dataclass(frozen=True)
class Processes:
    """This process's place in a torchrun launch (rank 0 of 1 without torchrun)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def primary(self) -> bool:
        return self.rank == 0


def start_processes() -> Processes:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on
    CUDA), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Processes(rank=rank, world_size=world_size, device=device)


def stop_processes() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_over_processes(values: list[float], device: torch.device) -> list[float]:
    """``values`` summed over every rank of the launch (the engine's totals of an epoch)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed python, numpy and torch from (seed, epoch, rank): augmentation, Mixup, drop path
    and the DataLoader workers' seeds all follow, so an epoch replays the same after resume."""
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(2)
    random.seed(int(state[0]))
    np.random.seed(int(state[1]))
    torch.manual_seed(int(state[0]) << 32 | int(state[1]))


# ------------------------------------------------------------------------------ data
def image_folder_classes(data: Path, split: str) -> list[str]:
    """The class folders of ``data/split``, checked to be an ImageFolder."""
    layout = (f"rampsearch train reads an ImageFolder: {data}/{split}/<class>/<image>.JPEG and "
              f"the same classes under the validation split (ImageNet's usual train/ val/ layout)")
    if not data.is_dir():
        raise UserError(f"--data {data} is not a folder; {layout}.")
    root = data / split
    if not root.is_dir():
        raise UserError(f"--data {data} has no {split}/ folder; {layout}.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        loose = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in root.iterdir())
        detail = "holds images but no class folders" if loose else "has no class folders"
        raise UserError(f"{root} {detail}; {layout}.")
    empty = [c for c in classes if not _has_image(root / c)]
    if empty:
        raise UserError(f"{root} has class folder(s) without images: {', '.join(empty[:5])}"
                        f"{' ...' if len(empty) > 5 else ''}; remove them or add images "
                        f"({', '.join(IMAGE_EXTENSIONS)}).")
    return classes


def _has_image(folder: Path) -> bool:
    return any(path.suffix.lower() in IMAGE_EXTENSIONS
               for _, _, files in os.walk(folder) for path in map(Path, files))


def check_data(data: Path, recipe: TrainRecipe) -> list[str]:
    """The class names, after checking both splits agree with each other and the model."""
    train_classes = image_folder_classes(data, recipe.train_split)
    val_classes = image_folder_classes(data, recipe.val_split)
    if train_classes != val_classes:
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        raise UserError(f"the class folders of {recipe.train_split}/ and {recipe.val_split}/ "
                        f"differ (only in {recipe.train_split}/: {only_train[:5]}, only in "
                        f"{recipe.val_split}/: {only_val[:5]}); labels are folder indices, so "
                        f"both splits need the same class folders.")
    if len(train_classes) != recipe.num_classes:
        raise UserError(f"{data} has {len(train_classes)} classes but the model has "
                        f"num_classes {recipe.num_classes}; set num_classes: "
                        f"{len(train_classes)} in the training config, or point --data at the "
                        f"data set the model is for.")
    return train_classes


def build_datasets(data: Path, recipe: TrainRecipe) -> tuple[Any, Any]:
    """timm ImageFolder datasets with the recipe's train and eval transforms."""
    from timm.data import create_dataset, create_transform

    size = tuple(recipe.input_size)
    train = create_dataset("", root=str(data / recipe.train_split), split=recipe.train_split,
                           search_split=False, is_training=True)
    val = create_dataset("", root=str(data / recipe.val_split), split=recipe.val_split,
                         search_split=False, is_training=False)
    train.transform = create_transform(
        size, is_training=True, scale=tuple(recipe.scale), ratio=tuple(recipe.ratio),
        hflip=recipe.hflip, color_jitter=recipe.color_jitter, auto_augment=recipe.aa or None,
        interpolation=recipe.train_interpolation, re_prob=recipe.reprob, re_mode=recipe.remode,
        re_count=recipe.recount)
    val.transform = create_transform(size, is_training=False, interpolation=recipe.interpolation,
                                     crop_pct=recipe.crop_pct)
    return train, val


def build_loaders(train_set: Any, val_set: Any, recipe: TrainRecipe, processes: Processes
                  ) -> tuple[DataLoader, DataLoader]:
    """Shuffled, sharded training batches (the last partial batch dropped); evaluation sharded
    in order. Workers are not kept between epochs so each epoch's seeds are its own."""
    shard = dict(num_replicas=processes.world_size, rank=processes.rank)
    train_sampler = DistributedSampler(train_set, shuffle=True, seed=recipe.seed, **shard)
    val_sampler = DistributedSampler(val_set, shuffle=False, **shard)
    common = dict(num_workers=recipe.workers,
                  pin_memory=recipe.pin_mem and processes.device.type == "cuda")
    train = DataLoader(train_set, batch_size=recipe.batch_size, sampler=train_sampler,
                       drop_last=True, **common)
    val = DataLoader(val_set, batch_size=recipe.batch_size, sampler=val_sampler, **common)
    if len(train) == 0:
        raise UserError(f"the {recipe.train_split}/ split has {len(train_set)} images: not one "
                        f"full batch of {recipe.batch_size} per process over "
                        f"{processes.world_size} process(es); lower --batch-size or add images.")
    return train, val


# ------------------------------------------------------------------------------ weights
def load_initial_weights(model: nn.Module, config: IFormerConfig, init: str) -> str:
    """Start from the released iFormer weights (``released``) or a weights file; returns a
    line saying what was loaded."""
    if init == "released":
        return load_released_weights(model, config)
    return load_weights_file(model, Path(init))


def load_released_weights(model: nn.Module, config: IFormerConfig) -> str:
    import timm

    size = paper_size(config)
    name = f"iformer_{size}"
    paper = iformer.preset(name)
    shape_fields = ("depths", "embed_dims", "num_heads", "attention_heads", "pool_sizes",
                    "layer_scale_stages", "mlp_ratio", "qkv_bias", "in_chans")
    differing = [f for f in shape_fields if getattr(config, f) != getattr(paper, f)]
    if differing:
        blocks = [b for b, (a, p) in enumerate(zip(config.attention_heads,
                                                   paper.attention_heads)) if a != p]
        where = (f" (the ramp differs at block(s) {blocks[:8]})"
                 if differing == ["attention_heads"] else f" ({', '.join(differing)} differ)")
        raise UserError(f"--init released: the released weights are for the paper's {name} and "
                        f"its ramp; this model is not{where}. Train it from scratch (drop "
                        f"--init), or pass --init PATH with weights of the same shapes.")
    url = timm.models.get_pretrained_cfg(name).url
    try:
        released = timm.create_model(name, pretrained=True, num_classes=config.num_classes,
                                     img_size=config.img_size)
    except Exception as exc:  # no network, a proxy, a partial download: all say the same
        raise UserError(f"--init released: cannot download {url} ({exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}). Download the file "
                        f"where there is internet and pass --init PATH.") from None
    model.load_state_dict(released.state_dict())
    return f"initial weights: released {name} ({url})"


def load_weights_file(model: nn.Module, path: Path) -> str:
    """Weights from a file (a released checkpoint, or last.pth/best.pth of another run):
    unwrapped and position embeddings resized by ``iformer.checkpoint_filter_fn``; a
    classifier for another number of classes is left at its fresh initialisation."""
    state = read_checkpoint(path, what="--init")
    if not isinstance(state, Mapping):
        raise UserError(f"--init {path} holds no state dict.")
    state = iformer.checkpoint_filter_fn(dict(state), model)
    own = model.state_dict()
    head_note = ""
    if any(k.startswith("head.") and k in own and state[k].shape != own[k].shape for k in state):
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        head_note = " (classifier left fresh: another number of classes)"
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and hasattr(v, "shape") and v.shape != own[k].shape]
    missing = sorted(set(own) - set(state) - ({"head.weight", "head.bias"} if head_note else set()))
    unexpected = sorted(set(state) - set(own))
    if wrong or missing or unexpected:
        detail = "; ".join(part for part in (
            f"{len(wrong)} tensor(s) of another shape, e.g. {wrong[0]}" if wrong else "",
            f"{len(missing)} missing, e.g. {missing[0]}" if missing else "",
            f"{len(unexpected)} unexpected, e.g. {unexpected[0]}" if unexpected else "") if part)
        raise UserError(f"--init {path} does not fit this model ({detail}); the weights come "
                        f"from another ramp or size. Pass weights of this exact model, or "
                        f"drop --init.")
    model.load_state_dict(state, strict=not head_note)
    return f"initial weights: {path}{head_note}"


def read_checkpoint(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)`` with one-line errors for the usual failures."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file.") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder; pass the weights file.") from None
    except Exception as exc:
        if "Unsupported global" in str(exc):  # a class or function pickled beside the tensors
            raise UserError(
                f"{what} {path} holds pickled Python objects besides tensors (e.g. training "
                f"arguments), which are not loaded for safety. If you trust the file, keep only "
                f"its weights: python -c \"import torch; c = torch.load('{path}', "
                f"weights_only=False); torch.save(c.get('model', c), 'weights.pth')\" and pass "
                f"weights.pth.") from None
        raise UserError(f"{what} {path} is not a readable PyTorch checkpoint "
                        f"({exc.__class__.__name__}); it may be truncated.") from None


# ------------------------------------------------------------------------------ checkpoints
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write through a temporary file so a kill mid-write leaves the previous checkpoint."""
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def check_resumable(saved: Mapping[str, Any], recipe: TrainRecipe, path: Path) -> None:
    stored = saved.get("recipe")
    if not isinstance(stored, Mapping):
        raise UserError(f"{path} was not written by rampsearch train; start a new run with "
                        f"another --output.")
    wanted = recipe.to_dict()
    differences = [f"{key}: saved {stored.get(key)!r}, now {wanted.get(key)!r}"
                   for key in sorted(set(stored) | set(wanted))
                   if key not in TrainRecipe.RESUMABLE and stored.get(key) != wanted.get(key)]
    if differences:
        raise UserError(f"--resume: the run in {path.parent} used other settings "
                        f"({'; '.join(differences[:4])}); resume with the same config and "
                        f"flags, or start a new run with another --output.")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{key: int(value) if key == "epoch" else float(value)
                 for key, value in row.items()} for row in csv.DictReader(handle)]


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)


# ------------------------------------------------------------------------------ the run
@dataclass
class TrainSummary:
    status: str  # 'completed' | 'stopped' | 'diverged'
    reason: str
    epochs_done: int
    best_top1: float
    best_epoch: int
    output: Path
    history: list[dict[str, Any]] = field(default_factory=list)


def train(recipe: TrainRecipe, data: Path, output: Path, resume: bool = False,
          init: str | None = None, on_epoch: Callable[[dict[str, Any]], bool | None] | None = None,
          log: Callable[[str], None] = print) -> TrainSummary:
    """Train with the full recipe, one process or one of a torchrun launch. ``on_epoch``
    gets each epoch's metrics row; returning True stops after that epoch's checkpoint."""
    for module in recipe.device_modules:
        importlib.import_module(module)
    config = recipe.model_config()
    check_data(data, recipe)
    last = output / LAST
    if resume and not last.is_file():
        raise UserError(f"--resume: {output} holds no {LAST} to resume from; drop --resume to "
                        f"start the run there.")
    if not resume and last.is_file():
        raise UserError(f"{output} already holds a run ({LAST}); add --resume to continue it, "
                        f"or choose another --output.")
    if resume and init is not None:
        raise UserError("--init and --resume exclude each other: a resumed run continues from "
                        "its own last checkpoint.")
    processes = start_processes()
    try:
        return _train(recipe, config, data, output, resume, init, on_epoch,
                      log if processes.primary else _quiet, processes)
    finally:
        stop_processes()


def _quiet(_: str) -> None:
    return None


@dataclass
class RunState:
    """What a checkpoint restores: the weights, their EMA, the optimizer and schedule, and
    how far the run got."""

    model: nn.Module
    ema: Any  # timm ModelEmaV3, or None without EMA
    optimizer: torch.optim.Optimizer
    scheduler: Any  # timm Scheduler
    total_epochs: int
    updates_per_epoch: int
    epoch: int = 0  # epochs done
    best_top1: float = -1.0
    best_epoch: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0  # the engine's clock at the last epoch's end (timing; not saved)

    def checkpoint(self, recipe: TrainRecipe, config: IFormerConfig) -> dict[str, Any]:
        """Tensors and plain containers only, so ``torch.load(weights_only=True)`` reads it."""
        return {"epoch": self.epoch, "best_top1": self.best_top1, "best_epoch": self.best_epoch,
                "model": self.model.state_dict(),
                "model_ema": self.ema.module.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "recipe": recipe.to_dict(),
                "model_config": config.to_dict(), "metrics": self.rows[-1]}

    def restore(self, output: Path, recipe: TrainRecipe) -> None:
        saved = read_checkpoint(output / LAST, what="--resume")
        check_resumable(saved, recipe, output / LAST)
        self.model.load_state_dict(saved["model"])
        if self.ema is not None:
            self.ema.module.load_state_dict(saved["model_ema"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.epoch, self.best_top1, self.best_epoch = (saved["epoch"], saved["best_top1"],
                                                       saved["best_epoch"])
        self.scheduler.step(self.epoch)  # the learning rate of the next epoch
        # Rows after the checkpoint belong to an epoch that is about to run again.
        self.rows = [row for row in read_metrics(output / METRICS)
                     if row["epoch"] <= self.epoch]


def build_state(model: nn.Module, recipe: TrainRecipe, updates_per_epoch: int) -> RunState:
    """AdamW (no decay on norms, biases and position embeddings: timm's rule with the
    model's ``no_weight_decay``), warm-up + cosine, and an EMA updated after every step."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3

    optimizer = create_optimizer_v2(model, opt=recipe.opt, lr=recipe.lr,
                                    weight_decay=recipe.weight_decay, eps=recipe.opt_eps)
    scheduler, total_epochs = create_scheduler_v2(
        optimizer, sched=recipe.sched, num_epochs=recipe.epochs,
        warmup_epochs=recipe.warmup_epochs, warmup_lr=recipe.warmup_lr, min_lr=recipe.min_lr,
        cooldown_epochs=recipe.cooldown_epochs, step_on_epochs=not recipe.sched_on_updates,
        updates_per_epoch=updates_per_epoch)
    ema = ModelEmaV3(model, decay=recipe.model_ema_decay) if recipe.model_ema else None
    if ema is not None:
        # The engine steps the optimizer; the EMA follows every step through torch's hook.
        optimizer.register_step_post_hook(lambda *_: ema.update(model))
    return RunState(model=model, ema=ema, optimizer=optimizer, scheduler=scheduler,
                    total_epochs=total_epochs, updates_per_epoch=updates_per_epoch)


def loss_and_mixup(recipe: TrainRecipe) -> tuple[nn.Module, Any]:
    """Mixup/CutMix (label smoothing folded into their soft targets) with soft-target
    cross-entropy; without them, label-smoothed cross-entropy."""
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if recipe.mixing:
        return SoftTargetCrossEntropy(), Mixup(
            mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix, prob=recipe.mixup_prob,
            switch_prob=recipe.mixup_switch_prob, mode=recipe.mixup_mode,
            label_smoothing=recipe.smoothing, num_classes=recipe.num_classes)
    if recipe.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=recipe.smoothing), None
    return nn.CrossEntropyLoss(), None


def wrap_for_processes(model: nn.Module, processes: Processes) -> nn.Module:
    if processes.world_size == 1:
        return model
    device = processes.device
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def recipe_training_plan(model: nn.Module, state: RunState, recipe: TrainRecipe,
                         loaders: tuple[Any, Any], processes: Processes) -> engine.TrainingPlan:
    """The engine's view of the run: batches on the device, seeded per epoch, mixed; the
    epochs still to run, the EMA to evaluate and the sum over processes."""
    device = processes.device
    train_loader, val_loader = loaders
    loss, mixup = loss_and_mixup(recipe)

    def train_batches(epoch: int) -> Iterator[engine.Batch]:
        seed_epoch(recipe.seed, epoch, processes.rank)
        train_loader.sampler.set_epoch(epoch)
        for images, targets in train_loader:
            images = images.to(device, non_blocking=True, memory_format=torch.channels_last)
            targets = targets.to(device, non_blocking=True)
            if mixup is not None:
                images, targets = mixup(images, targets)
            yield images, targets

    def val_batches() -> Iterator[engine.Batch]:
        for images, targets in val_loader:
            yield (images.to(device, non_blocking=True, memory_format=torch.channels_last),
                   targets.to(device, non_blocking=True))

    return engine.TrainingPlan(
        model=model, optimizer=state.optimizer, train_loss=loss, train_batches=train_batches,
        val_batches=val_batches, epochs=state.total_epochs, device=device,
        scheduler=state.scheduler,
        autocast_dtype=torch.bfloat16 if recipe.amp and device.type == "cuda" else None,
        grad_clip=recipe.clip_grad, start_epoch=state.epoch,
        start_updates=state.epoch * state.updates_per_epoch,
        ema_model=state.ema.module if state.ema is not None else None,
        sum_over_processes=(functools.partial(sum_over_processes, device=device)
                            if processes.world_size > 1 else None))


def record_epoch(metrics: engine.EpochMetrics, state: RunState, recipe: TrainRecipe,
                 config: IFormerConfig, output: Path, primary: bool) -> dict[str, Any]:
    """After each epoch: its metrics.csv row, the best so far, then (rank 0) metrics.csv,
    last.pth and, when the score improved, best.pth."""
    row = metrics_row(metrics, epoch_s=metrics.elapsed_s - state.elapsed_s)
    state.epoch, state.elapsed_s = metrics.epoch, metrics.elapsed_s
    state.rows.append(row)
    score = row["ema_top1"] if state.ema is not None else row["top1"]  # as timm does
    improved = score > state.best_top1
    if improved:
        state.best_top1, state.best_epoch = score, state.epoch
    if primary:
        write_metrics(output / METRICS, state.rows)  # before the checkpoint: see restore
        save_checkpoint(output / LAST, state.checkpoint(recipe, config))
        if improved:
            shutil.copyfile(output / LAST, output / BEST)
    return row


def metrics_row(metrics: engine.EpochMetrics, epoch_s: float) -> dict[str, Any]:
    """An epoch as a metrics.csv row; the EMA columns are NaN in a run without EMA."""
    values = {**metrics.to_dict(), "epoch_s": round(epoch_s, 3),
              "images_per_s": round(metrics.images_per_s, 2)}
    return {name: math.nan if values[name] is None else values[name] for name in METRIC_COLUMNS}


def _train(recipe: TrainRecipe, config: IFormerConfig, data: Path, output: Path, resume: bool,
           init: str | None, on_epoch: Callable[[dict[str, Any]], bool | None] | None,
           log: Callable[[str], None], processes: Processes) -> TrainSummary:
    torch.manual_seed(recipe.seed)  # the same initial weights on every rank
    model = iformer.create_model(config)
    if init is not None:
        log(load_initial_weights(model, config, init))
    model.to(device=processes.device, memory_format=torch.channels_last)
    train_set, val_set = build_datasets(data, recipe)
    loaders = build_loaders(train_set, val_set, recipe, processes)
    state = build_state(model, recipe, updates_per_epoch=len(loaders[0]))
    if resume:
        state.restore(output, recipe)
        log(f"resuming {output / LAST} after epoch {state.epoch} of {state.total_epochs}")
    plan = recipe_training_plan(wrap_for_processes(model, processes), state, recipe, loaders, processes)
    log(f"training {recipe.model} ({iformer.count_params(config) / 1e6:.2f} M params, "
        f"{iformer.count_flops(config, config.input_size) / 1e9:.3g} GFLOPs) on {len(train_set)} "
        f"images, {len(val_set)} for validation; {processes.world_size} process(es) x "
        f"{recipe.batch_size} = total batch {processes.world_size * recipe.batch_size}, "
        f"{len(loaders[0])} steps/epoch, {state.total_epochs} epochs, device {processes.device}")
    output.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(metrics: engine.EpochMetrics) -> bool:
        row = record_epoch(metrics, state, recipe, config, output, processes.primary)
        log(format_epoch(row, state.total_epochs, state.best_top1, state.best_epoch,
                         state.ema is not None))
        return on_epoch is not None and bool(on_epoch(row))

    with warnings.catch_warnings():
        # DDP warns that 1x1 and depthwise kernels get gradients whose strides differ from
        # the weights' only along dimensions of size 1: the same memory order, so moot here.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
        result = engine.run_training(plan, on_epoch_end)
    if result.status == "diverged":
        log(f"stopped: {result.reason}")
    return TrainSummary(status=result.status, reason=result.reason, epochs_done=len(state.rows),
                        best_top1=state.best_top1, best_epoch=state.best_epoch, output=output,
                        history=state.rows)


def format_epoch(row: Mapping[str, Any], total: int, best: float, best_epoch: int,
                 with_ema: bool) -> str:
    ema = f"  ema top-1 {row['ema_top1']:6.2f}" if with_ema else ""
    return (f"epoch {row['epoch']:>3}/{total}  lr {row['lr']:.2e}  train loss "
            f"{row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  top-1 {row['top1']:6.2f}  "
            f"top-5 {row['top5']:6.2f}{ema}  {row['images_per_s']:.0f} img/s  "
            f"(best {best:.2f} @ {best_epoch})")
