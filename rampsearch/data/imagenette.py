"""Imagenette: ten ImageNet classes of natural photographs, the proxy data where it can be had.

``rampsearch data get imagenette`` downloads the public ``imagenette2-160.tgz`` (or takes a
local archive, an extracted folder or another URL with ``--from``), checks its layout and
counts, and prepares it once per machine as memory-mappable arrays at the resolutions the
proxy and the reference train at: ``<cache>/imagenette/<res>px/`` (the cache directory is
``$RAMPSEARCH_CACHE``, else ``$XDG_CACHE_HOME/rampsearch``, else ``~/.cache/rampsearch``).
``--data imagenette`` then names that set. Nothing becomes the data set until it is whole:
the archive is downloaded to a temporary file, extracted and prepared in a temporary folder
beside the target, and moved into place by one rename.

Both forms of the archive are accepted: the public one keeps each photograph's aspect ratio
(short side 160 px), a square copy has 160 x 160 images; preparing resizes the short side and
centre-crops either way.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .cache import cache_dir
from .prepare import prepare_imagefolder

NAME = "imagenette"
PUBLIC_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
ARCHIVE_ENV = "RAMPSEARCH_IMAGENETTE"  # a local archive or folder `make run` prepares from
RESOLUTIONS = (64, 96)  # the default proxy's and the reference's
CLASSES = 10
# The imagenette2 split has 9,469 train and 3,925 val images; the checksum of the public
# archive is not published, so its layout and counts are checked instead.
MIN_COUNTS = {"train": 9000, "val": 3500}
MAX_COUNTS = {"train": 10000, "val": 4500}
GET_HINT = "`rampsearch data get imagenette`"
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK = 1 << 20


def home() -> Path:
    return cache_dir() / NAME


def prepared_dirs() -> dict[int, Path]:
    """{resolution: folder} of every finished preparation on this machine."""
    found = {}
    if home().is_dir():
        for folder in home().glob("*px"):
            side = folder.name.removesuffix("px")
            if side.isdigit() and (folder / "manifest.json").is_file():
                found[int(side)] = folder
    return dict(sorted(found.items()))


def prepared_dir(resolution: int) -> Path:
    """The prepared folder to load for ``resolution`` px: the same resolution, else the
    smallest larger one (downsizing loses least), else the largest."""
    found = prepared_dirs()
    if not found:
        raise UserError(f"Imagenette is not prepared on this machine (nothing under "
                        f"{home()}); run {GET_HINT} once (it downloads the public archive, "
                        f"about 94 MB; `--from FILE` takes a local copy), or use --data "
                        f"fashion-mnist.")
    larger = [side for side in found if side >= resolution]
    return found[min(larger) if larger else max(found)]


# ------------------------------------------------------------------------------ getting it
@dataclass
class GetReport:
    home: Path
    counts: dict[str, int]
    resolutions: list[int]
    wall_s: float


def get_imagenette(source: str | None = None, resolutions: tuple[int, ...] = RESOLUTIONS,
                   progress: bool = True,
                   count_range: tuple[dict[str, int], dict[str, int]] = (MIN_COUNTS, MAX_COUNTS)
                   ) -> GetReport:
    """Fetch Imagenette from ``source`` (a URL, a local .tgz or an extracted folder; the
    public archive by default) and prepare it at ``resolutions``. Resolutions prepared
    before are kept and nothing is fetched when all are there; a run that fails leaves
    nothing half-made. ``count_range`` bounds the image counts per split."""
    start = time.perf_counter()
    target = home()
    missing = [side for side in resolutions if side not in prepared_dirs()]
    if missing:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".get-", dir=target) as scratch:
            root = fetch_tree(source or os.environ.get(ARCHIVE_ENV) or PUBLIC_URL,
                              Path(scratch), progress)
            check_layout(root, *count_range)
            for side in missing:
                staging = Path(scratch) / f"{side}px"
                prepare_imagefolder(root, staging, classes=CLASSES,
                                    train_per_class=count_range[1]["train"],
                                    val_per_class=count_range[1]["val"], res=side, seed=0,
                                    progress=progress)
                shutil.rmtree(staging / "shards", ignore_errors=True)
                record_source(staging / "manifest.json", source or PUBLIC_URL)
                os.replace(staging, target / f"{side}px")
    found = prepared_dirs()
    manifest = json.loads((found[min(resolutions)] / "manifest.json").read_text())
    return GetReport(target, dict(manifest["counts"]), sorted(found),
                     time.perf_counter() - start)


def record_source(manifest_path: Path, source: str) -> None:
    """Name the archive or URL in the manifest, not the temporary folder it was read from."""
    manifest = json.loads(manifest_path.read_text())
    manifest["settings"]["source"] = source
    manifest["source"] = NAME
    manifest_path.write_text(json.dumps(manifest, indent=1))


def fetch_tree(source: str, scratch: Path, progress: bool) -> Path:
    """The extracted ImageFolder root of ``source`` (a folder is used where it is)."""
    if "://" not in source:
        path = Path(source).expanduser()
        if path.is_dir():
            return image_root(path, source)
        if not path.is_file():
            raise UserError(f"--from {source}: no such file or folder; give the path of "
                            f"imagenette2-160.tgz, of its extracted folder, or a URL.")
        archive = path
    else:
        archive = scratch / "download.tgz"
        download(source, archive, progress)
    extracted = scratch / "extracted"
    extract(archive, extracted, source)
    return image_root(extracted, source)


def download(url: str, destination: Path, progress: bool) -> None:
    """Stream ``url`` to ``destination``; a short or broken transfer is a UserError."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                open(destination, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            copy_stream(response.read, out.write, total, show_progress(progress, url))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = (f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                  else getattr(exc, "reason", exc))
        raise UserError(f"downloading {url} failed ({reason}); nothing was kept. Check the "
                        f"network and run the command again, or download the archive "
                        f"yourself and pass it with --from FILE.") from None


def copy_stream(read: Callable[[int], bytes], write: Callable[[bytes], object], total: int,
                report: Callable[[int, int], None]) -> int:
    done = 0
    while chunk := read(CHUNK):
        write(chunk)
        done += len(chunk)
        report(done, total)
    report(done, -1 if not total else total)
    if total and done != total:
        raise ValueError(f"the transfer ended after {done:,} of {total:,} bytes")
    return done


def show_progress(enabled: bool, url: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if not enabled:
            return
        if total > 0:
            width = 30
            filled = int(width * done / total)
            line = (f"\rdownloading {url.rsplit('/', 1)[-1]} [{'#' * filled}"
                    f"{'.' * (width - filled)}] {done / 1e6:.1f}/{total / 1e6:.1f} MB")
        else:
            line = f"\rdownloading {url.rsplit('/', 1)[-1]} {done / 1e6:.1f} MB"
        print(line, end="", file=sys.stderr, flush=True)
        if done == total or total < 0:
            print(file=sys.stderr)
    return report


def extract(archive: Path, destination: Path, source: str) -> None:
    """Extract a .tgz safely (no member outside ``destination``); a truncated or corrupt
    archive is a UserError."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise UserError(f"{source} is not a whole .tgz archive ({exc}); nothing was kept. "
                        f"Download it again, or pass an extracted folder with --from.") from None


def image_root(folder: Path, source: str) -> Path:
    """The folder holding train/ and val/: ``folder`` itself or its one subfolder."""
    for candidate in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        if (candidate / "train").is_dir() and (candidate / "val").is_dir():
            return candidate
    raise UserError(f"{source} does not have Imagenette's layout: no train/ and val/ folders "
                    f"(expected imagenette2-160/train/<wnid>/*.JPEG and .../val/<wnid>/"
                    f"*.JPEG); pass the imagenette2-160 archive or its extracted folder.")


def check_layout(root: Path, min_counts: dict[str, int] = MIN_COUNTS,
                 max_counts: dict[str, int] = MAX_COUNTS) -> dict[str, int]:
    """Image counts per split; UserError unless there are the same 10 classes in train and
    val and each split's count is within its bounds (about 9.5k train and 3.9k val)."""
    counts = {}
    classes = {}
    for split in ("train", "val"):
        folders = sorted(p for p in (root / split).iterdir() if p.is_dir())
        classes[split] = [p.name for p in folders]
        counts[split] = sum(1 for folder in folders for f in folder.iterdir() if f.is_file())
    if len(classes["train"]) != CLASSES or classes["train"] != classes["val"]:
        raise UserError(f"{root} has {len(classes['train'])} train and {len(classes['val'])} "
                        f"val class folders; Imagenette has the same {CLASSES} in both. Pass "
                        f"the imagenette2-160 archive, or prepare another ImageFolder tree "
                        f"with `rampsearch data prepare`.")
    for split, count in counts.items():
        if not min_counts[split] <= count <= max_counts[split]:
            raise UserError(f"{root}/{split} holds {count} images; Imagenette's {split} split "
                            f"has {min_counts[split]:,} to {max_counts[split]:,}. The archive "
                            f"is incomplete or another data set; download it again.")
    return counts
