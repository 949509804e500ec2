"""The one in-memory form every proxy data source yields, and the operations on it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError


@dataclass
class ProxyData:
    """Images and labels of a proxy data set, held in memory (or memory-mapped).

    ``*_images`` are uint8 arrays of shape (N, H, W, 3), ``*_labels`` int64 arrays of shape
    (N,) with values in ``range(num_classes)``. ``manifest`` records where the data came from
    (source, classes, counts, resolution, seed and the subset taken).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    class_names: list[str]
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "val"):
            images, labels = self.split(split)
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
                raise UserError(f"{split} images have shape {images.shape} and dtype "
                                f"{images.dtype}; proxy data must be uint8 (N, H, W, 3). Prepare "
                                f"the data again with `rampsearch data prepare`.")
            if labels.shape != (images.shape[0],):
                raise UserError(f"{split} has {images.shape[0]} images but labels of shape "
                                f"{labels.shape}; prepare the data again with "
                                f"`rampsearch data prepare`.")
            if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise UserError(f"{split} labels run from {labels.min()} to {labels.max()} "
                                f"but there are {self.num_classes} class names; prepare the "
                                f"data again with `rampsearch data prepare`.")
        if self.train_images.shape[1:] != self.val_images.shape[1:]:
            raise UserError(f"train images are {self.train_images.shape[1:3]} but val images "
                            f"{self.val_images.shape[1:3]}; both splits need one resolution.")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def resolution(self) -> int:
        """Side of the (square) images."""
        return int(self.train_images.shape[1])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name == "train":
            return self.train_images, self.train_labels
        if name == "val":
            return self.val_images, self.val_labels
        raise ValueError(f"unknown split {name!r}; use 'train' or 'val'")

    def subset(self, train_samples: int | None, val_samples: int | None,
               seed: int = 0) -> ProxyData:
        """A class-balanced subset of each split (None keeps a split whole)."""
        train = balanced_indices(self.train_labels, self.num_classes, train_samples, seed, "train")
        val = balanced_indices(self.val_labels, self.num_classes, val_samples, seed, "val")
        manifest = dict(self.manifest)
        manifest["subset"] = {"train_samples": int(train.size), "val_samples": int(val.size),
                              "seed": seed}
        manifest["counts"] = {"train": int(train.size), "val": int(val.size)}
        return dataclasses.replace(
            self, train_images=self.train_images[train], train_labels=self.train_labels[train],
            val_images=self.val_images[val], val_labels=self.val_labels[val], manifest=manifest)

    def resized(self, resolution: int) -> ProxyData:
        """The same images at another (square) resolution."""
        if resolution == self.resolution:
            return self
        manifest = {**self.manifest, "resolution": resolution}
        return dataclasses.replace(
            self, train_images=resize_images(self.train_images, resolution),
            val_images=resize_images(self.val_images, resolution), manifest=manifest)


def balanced_indices(labels: np.ndarray, num_classes: int, count: int | None, seed: int,
                     split: str = "train") -> np.ndarray:
    """Sorted indices of ``count`` samples, as equal per class as the count allows.

    Each class draws from its own seeded permutation, so the subset of a class does not
    depend on how many samples the other classes have, and a larger count only adds samples.
    """
    if count is None or count == labels.size:
        return np.arange(labels.size)
    if count < 1:
        raise UserError(f"asked for {count} {split} samples; ask for at least 1.")
    if count > labels.size:
        raise UserError(f"asked for {count} {split} samples but the data has only "
                        f"{labels.size}; ask for at most {labels.size} or prepare more data.")
    per_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    quota = _balanced_quota([len(p) for p in per_class], count)
    chosen = [
        members[np.random.default_rng([seed, c]).permutation(len(members))[:q]]
        for c, (members, q) in enumerate(zip(per_class, quota, strict=True))
    ]
    return np.sort(np.concatenate(chosen))


def _balanced_quota(available: list[int], count: int) -> list[int]:
    """Split ``count`` over classes as evenly as their sizes allow (water-filling)."""
    quota = [0] * len(available)
    remaining = count
    open_classes = [c for c, a in enumerate(available) if a > 0]
    while remaining > 0 and open_classes:
        share, extra = divmod(remaining, len(open_classes))
        for rank, c in enumerate(open_classes):
            take = min(available[c] - quota[c], share + (1 if rank < extra else 0))
            quota[c] += take
            remaining -= take
        open_classes = [c for c in open_classes if quota[c] < available[c]]
    return quota


def resize_images(images: np.ndarray, resolution: int, chunk: int = 4096) -> np.ndarray:
    """(N, H, W, C) uint8 images to (N, resolution, resolution, C), bilinear.

    Non-square inputs are centre-cropped to a square first. Downscaling is antialiased;
    upscaling needs no antialiasing. Runs torch's uint8 channels-last kernels, ~10x faster
    than going through float.
    """
    import torch  # only resizing needs torch; preparing and loading .npy files do not
    import torch.nn.functional as F

    n, height, width, channels = images.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    out = np.empty((n, resolution, resolution, channels), dtype=np.uint8)
    for start in range(0, n, chunk):
        block = torch.from_numpy(np.ascontiguousarray(
            images[start:start + chunk, top:top + side, left:left + side]))
        block = F.interpolate(block.permute(0, 3, 1, 2), size=(resolution, resolution),
                              mode="bilinear", align_corners=False,
                              antialias=resolution < side)
        out[start:start + chunk] = block.permute(0, 2, 3, 1).numpy()
    return out
