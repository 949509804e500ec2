"""`rampsearch data prepare` throughput on a generated ImageFolder of 256-500 px JPEGs.

    python -m benchmarks.bench_prepare [--classes 10] [--per-class 60]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from rampsearch.data import prepare_imagefolder


def photo_like(rng: np.random.Generator) -> Image.Image:
    """A smooth colour field with texture, 256-500 px a side: JPEG sizes like photos."""
    width, height = (int(v) for v in rng.integers(256, 501, 2))
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    texture = rng.normal(0, 14, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image) + texture, 0, 255).astype(np.uint8))


def make_imagefolder(root: Path, classes: int, per_class: int, val_per_class: int) -> int:
    rng = np.random.default_rng(0)
    total_bytes = 0
    for index in range(classes):
        for split, count in (("train", per_class), ("val", val_per_class)):
            folder = root / split / f"n{index:08d}"
            folder.mkdir(parents=True)
            for i in range(count):
                path = folder / f"img_{i}.JPEG"
                photo_like(rng).save(path, quality=85)
                total_bytes += path.stat().st_size
    return total_bytes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=60)
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks TOPIC` passes topics
    val_per_class = max(1, args.per_class // 5)
    cpus = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "imagefolder"
        size = make_imagefolder(root, args.classes, args.per_class, val_per_class)
        images = args.classes * (args.per_class + val_per_class)
        print(f"data prepare: {images} JPEGs of 256-500 px ({size / images / 1e3:.0f} kB "
              f"mean), {args.classes} classes, {cpus} CPUs")
        print()
        print(f"{'workers':>7}  {'res':>4}  {'images':>6}  {'wall s':>6}  {'images/s':>8}")
        for res in (64, 128):
            for workers in sorted({1, cpus}):
                out = Path(tmp) / f"out-{res}-{workers}"
                started = time.perf_counter()
                report = prepare_imagefolder(root, out, classes=args.classes,
                                             train_per_class=args.per_class,
                                             val_per_class=val_per_class, res=res,
                                             workers=workers, progress=False)
                wall = time.perf_counter() - started
                written = report.counts["train"] + report.counts["val"]
                print(f"{workers:>7}  {res:>4}  {written:>6}  {wall:>6.2f}  "
                      f"{written / wall:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
