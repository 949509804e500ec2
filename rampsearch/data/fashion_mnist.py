"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package (IDX files, gzip or plain).

The directory is ``$RAMPSEARCH_FASHION_MNIST`` or, by default, Debian's
``/usr/share/datasets/fashion-mnist``. Decoding the gzip files takes about a second, so the
decoded 28 px arrays are cached as ``.npy`` under the cache directory
(``$RAMPSEARCH_CACHE``, else ``$XDG_CACHE_HOME/rampsearch``, else ``~/.cache/rampsearch``) and
memory-mapped from there. Only the subset a trial asks for is resized, which takes
milliseconds, so the cache stays at 55 MB whatever resolutions are used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import UserError
from .cache import cache_dir
from .dataset import ProxyData

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
DIR_ENV = "RAMPSEARCH_FASHION_MNIST"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
# split -> (images file, labels file), without the optional .gz suffix
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
INSTALL_HINT = ("Install it with `sudo apt-get install dataset-fashion-mnist`, or set "
                f"{DIR_ENV} to a directory holding train-images-idx3-ubyte.gz, "
                "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                "t10k-labels-idx1-ubyte.gz.")
IDX_DTYPE = {0x08: np.uint8}


def data_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


def source_files(directory: Path) -> dict[str, tuple[Path, Path]]:
    """The four IDX files, gzip preferred; UserError naming the fix when one is missing."""
    found: dict[str, tuple[Path, Path]] = {}
    for split, names in FILES.items():
        paths = []
        for name in names:
            candidates = [directory / f"{name}.gz", directory / name]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                raise UserError(f"Fashion-MNIST is not at {directory} ({name}.gz is missing). "
                                f"{INSTALL_HINT}")
            paths.append(path)
        found[split] = (paths[0], paths[1])
    return found


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST file format: big-endian header, then raw values)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {exc}. {INSTALL_HINT}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPE:
        raise UserError(f"{path} is not an IDX file of unsigned bytes. {INSTALL_HINT}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise UserError(f"{path} holds {len(raw) - header} values but its header promises "
                        f"shape {shape}; the file is truncated. {INSTALL_HINT}")
    return np.frombuffer(raw, dtype=IDX_DTYPE[raw[2]], offset=header).reshape(shape)


def idx_length(path: Path) -> int:
    """The first dimension of an IDX file, from its header alone."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        header = stream.read(8)
    return int.from_bytes(header[4:8], "big")


def fingerprint(files: dict[str, tuple[Path, Path]]) -> str:
    """Changes whenever a source file is replaced, so a stale cache is never read."""
    digest = hashlib.sha256()
    for pair in files.values():
        for path in pair:
            stat = path.stat()
            digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def load_fashion_mnist() -> ProxyData:
    """Both splits at 28 px, the grayscale channel repeated to three."""
    directory = data_dir()
    if not directory.is_dir():
        raise UserError(f"Fashion-MNIST is not installed: {directory} does not exist. "
                        f"{INSTALL_HINT}")
    files = source_files(directory)
    cache = cache_dir() / "fashion-mnist" / fingerprint(files)
    arrays = {}
    for split, (images_path, labels_path) in files.items():
        images = _cached(cache / f"{split}-images.npy", lambda p=images_path: read_idx(p))
        labels = _cached(cache / f"{split}-labels.npy",
                         lambda p=labels_path: read_idx(p).astype(np.int64))
        if images.ndim != 3 or labels.shape != (images.shape[0],):
            raise UserError(f"{images_path} and {labels_path} do not hold matching images and "
                            f"labels. {INSTALL_HINT}")
        arrays[split] = (images, labels)
    manifest = {
        "source": "fashion-mnist", "directory": str(directory),
        "files": {split: [str(p) for p in pair] for split, pair in files.items()},
        "classes": list(CLASS_NAMES), "resolution": 28, "seed": None,
        "counts": {split: int(labels.size) for split, (_, labels) in arrays.items()},
    }
    return ProxyData(train_images=_gray_as_rgb(arrays["train"][0]), train_labels=arrays["train"][1],
                     val_images=_gray_as_rgb(arrays["val"][0]), val_labels=arrays["val"][1],
                     class_names=list(CLASS_NAMES), manifest=manifest)


def _gray_as_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W) to a read-only (N, H, W, 3) view; indexing a subset copies only that."""
    return np.broadcast_to(images[..., None], (*images.shape, 3))


def _cached(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array at ``path`` (memory-mapped), computing and writing it first if absent.

    Written to a temporary name and renamed, so parallel trials never read half a file.
    An unwritable cache only costs the decode, never the run.
    """
    if path.is_file():
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    array = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with open(partial, "wb") as stream:
            np.save(stream, array)
        os.replace(partial, path)
    except OSError:
        pass
    return array
