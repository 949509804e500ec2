"""The full recipe's configuration: the paper's ImageNet training settings as ``train.yaml``.

``rampsearch export`` writes a :class:`TrainRecipe` for a searched model; ``rampsearch train``
(``rampsearch.train``) reads it back and trains. The keys are the argument names of timm's
``train.py``, so timm's script reads the same file. This module holds the settings only, so
exporting needs neither the trainer nor its distributed and data-loading code.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import iformer
from iformer import IFormerConfig

from ..errors import UserError
from .fields import check_known_fields, check_ranges, field_values, read_mapping_file

# Keys timm's train.py passes to create_model itself (from num_classes, drop, drop_path and
# input_size); model_kwargs repeating them would make timm fail with "multiple values".
TIMM_PASSED_KWARGS = ("num_classes", "drop_rate", "drop_path_rate", "in_chans")

PAPER_TOTAL_BATCH = 1024
PAPER_PROCESSES = 8  # 8 GPUs x 128 images: the paper's total batch of 1024


@dataclass
class TrainRecipe:
    """The paper's ImageNet-1K recipe (DeiT-style, as the iFormer release trains), named
    as timm's train.py names its arguments. ``batch_size`` is per process."""

    model: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    device_modules: list[str] = field(default_factory=lambda: ["iformer"])
    num_classes: int = 1000
    input_size: list[int] = field(default_factory=lambda: [3, 224, 224])
    train_split: str = "train"
    val_split: str = "val"
    drop: float = 0.0
    drop_path: float = 0.2
    opt: str = "adamw"
    opt_eps: float = 1e-8
    lr: float = 1e-3
    weight_decay: float = 0.05
    clip_grad: float | None = None
    sched: str = "cosine"
    sched_on_updates: bool = False
    epochs: int = 300
    warmup_epochs: int = 5
    warmup_lr: float = 1e-6
    min_lr: float = 1e-6
    cooldown_epochs: int = 0
    batch_size: int = PAPER_TOTAL_BATCH // PAPER_PROCESSES
    scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    hflip: float = 0.5
    color_jitter: float = 0.4
    aa: str | None = "rand-m9-mstd0.5-inc1"
    train_interpolation: str = "bicubic"
    reprob: float = 0.25
    remode: str = "pixel"
    recount: int = 1
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    smoothing: float = 0.1
    interpolation: str = "bicubic"
    crop_pct: float = 0.9
    model_ema: bool = True
    model_ema_decay: float = 0.99996
    amp: bool = True
    amp_dtype: str = "bfloat16"
    seed: int = 0
    workers: int = 8
    pin_mem: bool = True

    # Settings a resumed run may change without changing what is computed.
    RESUMABLE = ("workers", "pin_mem")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "the training config"
                  ) -> TrainRecipe:
        where = source.replace("{", "{{").replace("}", "}}")  # a file name is no format
        check_known_fields(cls, data, f"{where} has key(s) {{unknown}} that rampsearch train "
                                      f"does not implement; remove them, or train with timm's "
                                      f"train.py, which reads the same file. Keys understood: "
                                      f"{{known}}.")
        if "model" not in data:
            raise UserError(f"{source} has no `model` key; it needs the timm model name, e.g. "
                            f"`model: iformer_small` (re-export it with `rampsearch export`).")
        recipe = cls(**field_values(cls, data, where=f"{source}:"))
        recipe.validate(source)
        return recipe

    def validate(self, source: str = "the training config") -> None:
        """Raise UserError naming the first value out of range and what to use instead."""
        checks = [
            (len(self.input_size) == 3 and min(self.input_size) >= 1, "input_size",
             "[channels, height, width], e.g. [3, 224, 224]"),
            (self.num_classes >= 1, "num_classes", "the number of classes of the data"),
            (0 <= self.drop < 1, "drop", "a rate in [0, 1)"),
            (0 <= self.drop_path < 1, "drop_path", "a rate in [0, 1)"),
            (math.isfinite(self.lr) and self.lr > 0, "lr", "a positive learning rate"),
            (self.weight_decay >= 0, "weight_decay", "at least 0"),
            (self.clip_grad is None or self.clip_grad > 0, "clip_grad", "a positive norm or null"),
            (self.sched == "cosine", "sched", "cosine (other schedules: timm's train.py)"),
            (self.epochs >= 1, "epochs", "at least 1"),
            (self.warmup_epochs >= 0, "warmup_epochs", "at least 0"),
            (self.cooldown_epochs >= 0, "cooldown_epochs", "at least 0"),
            (self.batch_size >= 1, "batch_size", "at least 1 image per process"),
            (not self.mixing or self.batch_size % 2 == 0, "batch_size",
             "an even number (Mixup/CutMix pair the images of a batch)"),
            (self.mixup >= 0, "mixup", "an alpha of at least 0"),
            (self.cutmix >= 0, "cutmix", "an alpha of at least 0"),
            (0 <= self.smoothing < 1, "smoothing", "a value in [0, 1)"),
            (0 < self.crop_pct <= 1, "crop_pct", "a fraction in (0, 1]"),
            (0 < self.model_ema_decay < 1, "model_ema_decay", "a decay in (0, 1)"),
            (self.amp_dtype == "bfloat16", "amp_dtype",
             "bfloat16 (float16 needs a loss scaler; use timm's train.py for it)"),
            (self.workers >= 0, "workers", "at least 0"),
        ]
        check_ranges(self, checks, where=f"{source}:")
        known = set(_optimizer_names())
        if self.opt.lower() not in known:
            raise UserError(f"{source}: opt {self.opt!r} is not an optimizer timm knows; use "
                            f"adamw (the paper's) or one of timm.optim.list_optimizers().")

    @property
    def mixing(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def model_config(self) -> IFormerConfig:
        """The model timm builds from this file: ``create_model(model, num_classes=...,
        drop_rate=drop, drop_path_rate=drop_path, in_chans=input_size[0], **model_kwargs)``."""
        repeated = sorted(set(self.model_kwargs) & set(TIMM_PASSED_KWARGS))
        if repeated:
            raise UserError(f"model_kwargs sets {', '.join(repeated)}, which timm's train.py "
                            f"passes itself; use the top-level keys num_classes, drop, drop_path "
                            f"and input_size instead.")
        return iformer.preset(self.model, **self.model_kwargs, num_classes=self.num_classes,
                              drop_rate=self.drop, drop_path_rate=self.drop_path,
                              in_chans=self.input_size[0])


def _optimizer_names() -> list[str]:
    from timm.optim import list_optimizers
    return list_optimizers()


def paper_size(config: IFormerConfig) -> str:
    """The paper preset a config is a variant of: the one with the same stages, else the one
    nearest in FLOPs at 224 px (the recipe's drop path grows with model size)."""
    for name in iformer.PRESET_NAMES:
        ref = iformer.preset(name)
        if (ref.depths, ref.embed_dims, ref.num_heads) == (config.depths, config.embed_dims,
                                                           config.num_heads):
            return name
    flops = iformer.count_flops(config, (224, 224))
    return min(iformer.PRESET_NAMES,
               key=lambda n: abs(iformer.count_flops(iformer.preset(n), (224, 224)) - flops))


def timm_model_kwargs(config: IFormerConfig, model: str) -> dict[str, Any]:
    """The keywords that turn timm's ``model`` preset into ``config``: the ramp always, and
    every other field that differs from the preset (but those timm's train.py passes)."""
    base = iformer.preset(model).to_dict()
    kwargs = {}
    for name, value in config.to_dict().items():
        if name in TIMM_PASSED_KWARGS:
            continue
        if name == "attention_heads" or value != base[name]:
            kwargs[name] = value
    return kwargs


def recipe_for_model(config: IFormerConfig) -> TrainRecipe:
    """The paper's recipe for a model config (its own drop path, classes and input size)."""
    model = f"iformer_{paper_size(config)}"
    height, width = config.input_size
    return TrainRecipe(model=model, model_kwargs=timm_model_kwargs(config, model),
                       num_classes=config.num_classes, input_size=[config.in_chans, height, width],
                       drop=config.drop_rate, drop_path=config.drop_path_rate)


def yaml_line(exc: Exception) -> str:
    """" at line N" of a YAML error that knows its line, else nothing."""
    where = getattr(exc, "problem_mark", None)
    return f" at line {where.line + 1}" if where is not None else ""


def load_recipe(path: Path) -> TrainRecipe:
    """A ``train.yaml`` written by export, or a model config (YAML/JSON) trained with the
    paper's recipe."""
    data = read_mapping_file(
        path,
        unreadable=lambda exc: f"cannot read the training config {path}: {exc.strerror}. Pass "
                               f"the train.yaml written by `rampsearch export`.",
        invalid=lambda exc: f"{path} is not valid YAML{yaml_line(exc)}; fix it or write it "
                            f"again with `rampsearch export`.",
        not_mapping=f"{path} does not hold a mapping of settings; pass the train.yaml written "
                    f"by `rampsearch export` or a model config.")
    if isinstance(data.get("model"), str):
        return TrainRecipe.from_dict(data, source=str(path))
    return recipe_for_model(IFormerConfig.load(path))
