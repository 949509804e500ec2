"""Generated images with learnable class structure, for tests and quick checks offline.

Class ``c`` of ``C`` is a sinusoidal grating at orientation ``180° * c / C`` tinted with its
own hue, with a random spatial frequency, phase, contrast and brightness per image, a
grey blob at a random place, and pixel noise. Orientation and tint both carry the label,
so a small network learns it within a few hundred steps; nothing else does.
"""

from __future__ import annotations

import colorsys

import numpy as np

from .dataset import ProxyData

NUM_CLASSES = 10
DEFAULT_COUNTS = {"train": 5000, "val": 1000}
CLASS_NAMES = [f"grating-{round(180 * c / NUM_CLASSES)}deg" for c in range(NUM_CLASSES)]
SPLIT_STREAM = {"train": 0, "val": 1}  # the two splits never share a random stream


def class_tints(num_classes: int) -> np.ndarray:
    """(C, 3) RGB tints in [0.2, 1], evenly spaced in hue."""
    return np.array([colorsys.hsv_to_rgb(c / num_classes, 0.8, 1.0) for c in range(num_classes)])


def generate_split(count: int, resolution: int, seed: int, split: str,
                   chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images (balanced over the classes, in shuffled order) and their labels."""
    rng = np.random.default_rng([seed, SPLIT_STREAM[split]])
    labels = rng.permutation(np.arange(count) % NUM_CLASSES).astype(np.int64)
    images = np.empty((count, resolution, resolution, 3), dtype=np.uint8)
    coords = ((np.arange(resolution) + 0.5) / resolution - 0.5).astype(np.float32)
    ys, xs = np.meshgrid(coords, coords, indexing="ij")
    tints = class_tints(NUM_CLASSES).astype(np.float32)
    for start in range(0, count, chunk):
        batch = labels[start:start + chunk]
        n = batch.size
        angle = (np.pi * batch / NUM_CLASSES + rng.normal(0, 0.06, n)).astype(np.float32)
        freq = rng.uniform(3.0, 6.0, n).astype(np.float32)  # cycles per image side
        phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
        contrast = rng.uniform(0.25, 0.45, n).astype(np.float32)
        brightness = rng.uniform(0.35, 0.6, n).astype(np.float32)
        along = (np.cos(angle)[:, None, None] * xs + np.sin(angle)[:, None, None] * ys)
        grating = np.sin(2 * np.pi * freq[:, None, None] * along + phase[:, None, None])
        # A distractor that moves and carries no label.
        cy, cx = rng.uniform(-0.35, 0.35, (2, n)).astype(np.float32)
        blob = np.exp(-((ys - cy[:, None, None]) ** 2 + (xs - cx[:, None, None]) ** 2) / 0.01)
        pixel = (brightness[:, None, None, None]
                 + contrast[:, None, None, None] * grating[..., None] * tints[batch][:, None, None]
                 + 0.3 * blob[..., None]
                 + 0.08 * rng.standard_normal((n, resolution, resolution, 3), np.float32))
        images[start:start + n] = np.clip(pixel * 255, 0, 255).round().astype(np.uint8)
    return images, labels


def load_synthetic(resolution: int, train_samples: int | None, val_samples: int | None,
                   seed: int) -> ProxyData:
    counts = {"train": train_samples or DEFAULT_COUNTS["train"],
              "val": val_samples or DEFAULT_COUNTS["val"]}
    train_images, train_labels = generate_split(counts["train"], resolution, seed, "train")
    val_images, val_labels = generate_split(counts["val"], resolution, seed, "val")
    manifest = {"source": "synthetic", "classes": list(CLASS_NAMES), "resolution": resolution,
                "seed": seed, "counts": counts,
                "generator": "oriented tinted gratings + moving blob + noise"}
    return ProxyData(train_images, train_labels, val_images, val_labels, list(CLASS_NAMES),
                     manifest)
