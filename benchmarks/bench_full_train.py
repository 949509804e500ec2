"""Full-recipe trainer (``rampsearch train``): where its time goes besides the model.

1. Data: images/s of one loading process for the recipe's training transform (random
   resized crop, RandAugment rand-m9-mstd0.5-inc1, flip, random erasing) on ImageNet-sized
   JPEGs, against the same transform without RandAugment and the evaluation transform. One
   training process needs (its step images/s) / (this rate) loading workers.
2. Step: images/s of the recipe's optimizer step (Mixup/CutMix, soft-target loss, the EMA
   update after every step) against the bare step (forward, backward, AdamW, plain
   cross-entropy) on iformer_small, measured bare / recipe / bare in one run. At 112 px by
   default (a CPU takes seconds per 224 px image); the EMA costs the same per step at any
   size, so its share there is four times its share at 224 px: an upper bound.
3. Checkpoint: seconds and size of one ``last.pth`` (weights, EMA, AdamW state, schedule).

    python -m benchmarks.bench_full_train [--steps 3] [--batch 8] [--img-size 112]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timm.data import Mixup, create_transform
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.utils import ModelEmaV3
from torch import nn

import iformer
from rampsearch.train import TrainRecipe, recipe_for_model, save_checkpoint


def imagenet_like_jpegs(count: int, seed: int = 0) -> list[bytes]:
    """500x375 JPEGs (ImageNet's typical size): smooth colour fields plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        ys, xs = np.mgrid[0:375, 0:500]
        base = np.stack([np.sin(xs / rng.uniform(20, 80) + c) * 100 + 128 for c in range(3)], -1)
        pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def transform_images_per_s(jpegs: list[bytes], transform, repeats: int = 2) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        for data in jpegs:
            transform(Image.open(io.BytesIO(data)).convert("RGB"))
    return repeats * len(jpegs) / (time.perf_counter() - started)


def data_rows(recipe: TrainRecipe, count: int) -> list[str]:
    jpegs = imagenet_like_jpegs(count)
    size = tuple(recipe.input_size)
    train_kwargs = dict(is_training=True, scale=tuple(recipe.scale), ratio=tuple(recipe.ratio),
                        hflip=recipe.hflip, color_jitter=recipe.color_jitter,
                        interpolation=recipe.train_interpolation, re_prob=recipe.reprob,
                        re_mode=recipe.remode, re_count=recipe.recount)
    full = create_transform(size, auto_augment=recipe.aa, **train_kwargs)
    plain = create_transform(size, auto_augment=None, **train_kwargs)
    evaluation = create_transform(size, is_training=False, interpolation=recipe.interpolation,
                                  crop_pct=recipe.crop_pct)
    torch.set_num_threads(1)  # one loading worker is one thread
    rates = {"train (recipe)": transform_images_per_s(jpegs, full),
             "train without RandAugment": transform_images_per_s(jpegs, plain),
             "eval (resize, center crop)": transform_images_per_s(jpegs, evaluation)}
    base = rates["train (recipe)"]
    return [f"{name:<28} {rate:>10.0f} {rate / base:>10.2f}" for name, rate in rates.items()]


def step_images_per_s(config: iformer.IFormerConfig, recipe: TrainRecipe, batch: int,
                      steps: int, img_size: int, full_recipe: bool) -> float:
    torch.manual_seed(0)
    model = iformer.create_model(config).to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=recipe.lr,
                                    weight_decay=recipe.weight_decay)
    inputs = torch.randn(batch, 3, img_size, img_size).contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, config.num_classes, (batch,))
    if full_recipe:
        ema = ModelEmaV3(model, decay=recipe.model_ema_decay)
        optimizer.register_step_post_hook(lambda *_: ema.update(model))
        mixup = Mixup(mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix,
                      label_smoothing=recipe.smoothing, num_classes=config.num_classes)
        loss_fn: nn.Module = SoftTargetCrossEntropy()
    else:
        loss_fn = nn.CrossEntropyLoss()
    model.train()
    for step in range(steps + 1):
        if step == 1:  # the first step allocates
            started = time.perf_counter()
        x, y = mixup(inputs, targets) if full_recipe else (inputs, targets)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - started)


def step_rows(config: iformer.IFormerConfig, recipe: TrainRecipe, batch: int, steps: int,
              img_size: int) -> list[str]:
    bare_before = step_images_per_s(config, recipe, batch, steps, img_size, full_recipe=False)
    full = step_images_per_s(config, recipe, batch, steps, img_size, full_recipe=True)
    bare_after = step_images_per_s(config, recipe, batch, steps, img_size, full_recipe=False)
    bare = (bare_before + bare_after) / 2
    return [f"{bare_before:>12.2f} {bare_after:>11.2f} {full:>12.2f} {full / bare:>12.3f}"]


def checkpoint_row(config: iformer.IFormerConfig, recipe: TrainRecipe) -> str:
    model = iformer.create_model(config)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=recipe.lr)
    model(torch.randn(2, 3, 224, 224)).sum().backward()
    optimizer.step()  # AdamW keeps two moments per parameter from the first step on
    ema = ModelEmaV3(model, decay=recipe.model_ema_decay)
    state = {"epoch": 1, "model": model.state_dict(), "model_ema": ema.module.state_dict(),
             "optimizer": optimizer.state_dict(), "recipe": recipe.to_dict()}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "last.pth"
        started = time.perf_counter()
        save_checkpoint(path, state)
        saved_s = time.perf_counter() - started
        started = time.perf_counter()
        torch.load(path, map_location="cpu", weights_only=True)
        loaded_s = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
    return f"{size_mb:>9.0f} {saved_s:>9.2f} {loaded_s:>9.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per run")
    parser.add_argument("--batch", type=int, default=8, help="images per step")
    parser.add_argument("--images", type=int, default=48, help="JPEGs for the data timing")
    parser.add_argument("--img-size", type=int, default=112, help="input side for the steps")
    args = parser.parse_args(argv or [])
    config = dataclasses.replace(iformer.preset("iformer_small"), drop_path_rate=0.2)
    recipe = recipe_for_model(config)
    threads = torch.get_num_threads()

    print(f"1. data: one loading process, {args.images} JPEGs of 500x375 -> 224 px")
    print(f"{'transform':<28} {'images/s':>10} {'vs recipe':>10}")
    for row in data_rows(recipe, args.images):
        print(row)

    torch.set_num_threads(threads)
    print(f"\n2. step: iformer_small at {args.img_size} px, batch {args.batch}, {args.steps} steps, "
          f"{threads} threads (bare / recipe / bare)")
    print(f"{'bare img/s':>12} {'bare again':>11} {'recipe img/s':>12} {'recipe/bare':>12}")
    for row in step_rows(config, recipe, args.batch, args.steps, args.img_size):
        print(row)

    print("\n3. checkpoint: last.pth of iformer_small (weights, EMA, AdamW state)")
    print(f"{'size MB':>9} {'save s':>9} {'load s':>9}")
    print(checkpoint_row(config, recipe))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
