"""Full-recipe trainer (``rampsearch train``): where its time goes besides the model.

1. Data: images/s of one loading process for the recipe's training transform (random
   resized crop, RandAugment rand-m9-mstd0.5-inc1, flip, random erasing) on ImageNet-sized
   JPEGs, against the same transform without RandAugment and the evaluation transform. One
   training process needs (its step images/s) / (this rate) loading workers.
2. Step: what the recipe adds to each optimizer step of iformer_small (Mixup/CutMix on the
   batch, the EMA update of all weights) next to the step itself (forward, backward, AdamW),
   each part timed within the same steps. At 112 px by default (a CPU takes seconds per
   224 px image); Mixup and the EMA cost the same at any size, so their share at 112 px is
   an upper bound of their share at 224 px.
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

import iformer
from rampsearch.training.recipe import TrainRecipe, recipe_for_model
from rampsearch.training.trainer import save_checkpoint


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


def step_parts(config: iformer.IFormerConfig, recipe: TrainRecipe, batch: int, steps: int,
               img_size: int) -> dict[str, float]:
    """Median seconds of each part of one recipe step, timed step by step in turn, so a
    change of machine load hits all parts alike."""
    torch.manual_seed(0)
    model = iformer.create_model(config).to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=recipe.lr,
                                    weight_decay=recipe.weight_decay)
    ema = ModelEmaV3(model, decay=recipe.model_ema_decay)
    mixup = Mixup(mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix,
                  label_smoothing=recipe.smoothing, num_classes=config.num_classes)
    loss_fn = SoftTargetCrossEntropy()
    inputs = torch.randn(batch, 3, img_size, img_size).contiguous(
        memory_format=torch.channels_last)
    targets = torch.randint(0, config.num_classes, (batch,))
    model.train()
    times: dict[str, list[float]] = {"mixup": [], "step": [], "ema": []}
    for step in range(steps + 1):  # the first step allocates: not timed
        started = time.perf_counter()
        x, y = mixup(inputs, targets)
        mixed = time.perf_counter()
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stepped = time.perf_counter()
        ema.update(model)
        done = time.perf_counter()
        if step:
            times["mixup"].append(mixed - started)
            times["step"].append(stepped - mixed)
            times["ema"].append(done - stepped)
    return {name: float(np.median(values)) for name, values in times.items()}


def step_row(config: iformer.IFormerConfig, recipe: TrainRecipe, batch: int, steps: int,
             img_size: int) -> str:
    parts = step_parts(config, recipe, batch, steps, img_size)
    extra = parts["mixup"] + parts["ema"]
    return (f"{parts['step']:>15.2f} {batch / parts['step']:>8.2f} {1e3 * parts['mixup']:>10.1f} "
            f"{1e3 * parts['ema']:>8.1f} {100 * extra / parts['step']:>11.2f}%")


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
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps")
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
    print(f"\n2. step: iformer_small at {args.img_size} px, batch {args.batch}, median of "
          f"{args.steps} steps, {threads} threads")
    print(f"{'fwd+bwd+AdamW s':>15} {'img/s':>8} {'Mixup ms':>10} {'EMA ms':>8} "
          f"{'recipe extra':>12}")
    print(step_row(config, recipe, args.batch, args.steps, args.img_size))

    print("\n3. checkpoint: last.pth of iformer_small (weights, EMA, AdamW state)")
    print(f"{'size MB':>9} {'save s':>9} {'load s':>9}")
    print(checkpoint_row(config, recipe))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
