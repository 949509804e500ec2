"""`load_proxy_data`: one entry point for every source of proxy data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from . import fashion_mnist, imagenette, synthetic
from .cache import cache_dir
from .dataset import ProxyData
from .prepare import FORMAT, SHARD_DIR, SPLITS

SOURCES = ("imagenette", "fashion-mnist", "synthetic")
PREPARE_HINT = "`rampsearch data prepare --imagenet IMAGENET_DIR --out DIR`"


def load_proxy_data(source: str, resolution: int, train_samples: int | None = None,
                    val_samples: int | None = None, seed: int = 0) -> ProxyData:
    """Proxy data at ``resolution`` px: a class-balanced subset chosen by ``seed``.

    ``source`` is 'imagenette' (prepared by ``rampsearch data get imagenette``),
    'fashion-mnist', 'synthetic' or the path of a directory written by
    ``rampsearch data prepare``. ``None`` samples means the whole split (for 'synthetic',
    5000 train and 1000 val images). The same arguments always give the same arrays.
    """
    if not isinstance(resolution, int) or resolution < 8:
        raise UserError(f"resolution {resolution!r} is too small; use at least 8 px (64 for "
                        f"proxy training, so stage 4 keeps 2x2 tokens).")
    for name, count in (("train_samples", train_samples), ("val_samples", val_samples)):
        if count is not None and count < 1:
            raise UserError(f"{name} is {count}; ask for at least 1 sample or None for all.")
    if source == "synthetic":
        return synthetic.load_synthetic(resolution, train_samples, val_samples, seed)
    if source == "fashion-mnist":
        full = fashion_mnist.load_fashion_mnist()
    elif source == imagenette.NAME:
        full = load_prepared(imagenette.prepared_dir(resolution))
    else:
        full = load_prepared(resolve_directory(source))
    return full.subset(train_samples, val_samples, seed).resized(resolution)


AUTO = "auto"


def choose_source(source: str) -> tuple[str, str | None]:
    """(the source to train on, a note for the plan). ``auto`` is Imagenette where it is
    prepared on this machine, else Fashion-MNIST, the offline fallback, with a note that
    says so; any other source is itself."""
    if source != AUTO:
        return source, None
    if imagenette.prepared_dirs():
        return imagenette.NAME, None
    return "fashion-mnist", (f"offline fallback: Imagenette is not prepared on this machine; "
                             f"{imagenette.GET_HINT} makes it the default")


def resolve_directory(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.is_dir():
        raise UserError(f"unknown data source {source!r}: it is neither 'imagenette', "
                        f"'fashion-mnist', 'synthetic' nor an existing directory. Use one of "
                        f"those names, or "
                        f"prepare a directory from ImageNet with {PREPARE_HINT}.")
    return path


def read_prepared_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        if (path / SHARD_DIR).is_dir():
            raise UserError(f"{path} holds an unfinished prepare; run the same `rampsearch data "
                            f"prepare ... --out {path}` command again to finish it.")
        raise UserError(f"{path} is not a prepared data directory (no manifest.json); create "
                        f"one with {PREPARE_HINT}.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{manifest_path} is unreadable ({exc}); prepare the directory again "
                        f"with {PREPARE_HINT}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{manifest_path} is not a rampsearch data manifest; prepare the "
                        f"directory with {PREPARE_HINT}.")
    return manifest


def load_prepared(path: Path) -> ProxyData:
    """A prepared directory, memory-mapped."""
    manifest = read_prepared_manifest(path)
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        for kind in ("images", "labels"):
            file = path / f"{split}_{kind}.npy"
            try:
                arrays[f"{split}_{kind}"] = np.load(file, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise UserError(f"cannot read {file} ({exc}); prepare the directory again with "
                                f"{PREPARE_HINT}.") from None
    for split in SPLITS:
        if arrays[f"{split}_labels"].shape[0] != manifest["counts"][split]:
            raise UserError(f"{path}/{split}_labels.npy does not match its manifest; prepare "
                            f"the directory again with {PREPARE_HINT}.")
    summary = {k: v for k, v in manifest.items() if k not in ("files", "skipped_files")}
    summary["directory"] = str(path.resolve())
    return ProxyData(class_names=list(manifest["classes"]), manifest=summary, **arrays)


def describe_source(source: str) -> dict[str, Any]:
    """What a source holds (classes, counts, resolution, provenance), without decoding it."""
    if source == "synthetic":
        return {"source": "synthetic", "classes": list(synthetic.CLASS_NAMES),
                "counts": dict(synthetic.DEFAULT_COUNTS), "resolution": "any (generated)",
                "generator": "oriented tinted gratings + moving blob + noise"}
    if source == "fashion-mnist":
        directory = fashion_mnist.data_dir()
        if not directory.is_dir():
            raise UserError(f"Fashion-MNIST is not installed: {directory} does not exist. "
                            f"{fashion_mnist.INSTALL_HINT}")
        files = fashion_mnist.source_files(directory)
        return {"source": "fashion-mnist", "directory": str(directory),
                "classes": list(fashion_mnist.CLASS_NAMES),
                "counts": {split: fashion_mnist.idx_length(images)
                           for split, (images, _) in files.items()},
                "resolution": "28 (resized on load)", "cache": str(cache_dir())}
    if source == imagenette.NAME:
        found = imagenette.prepared_dirs()
        if not found:
            imagenette.prepared_dir(0)  # raises the error that names `data get`
        manifest = read_prepared_manifest(next(iter(found.values())))
        summary = {k: v for k, v in manifest.items() if k not in ("files", "skipped_files")}
        return {**summary, "source": imagenette.NAME, "directory": str(imagenette.home()),
                "resolution": ", ".join(f"{side} px" for side in found) + " (prepared)"}
    manifest = read_prepared_manifest(resolve_directory(source))
    return {k: v for k, v in manifest.items() if k not in ("files", "skipped_files")}
