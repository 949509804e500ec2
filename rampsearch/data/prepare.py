"""`rampsearch data prepare`: a class subset of an ImageFolder tree (ImageNet) as .npy arrays.

Layout of the source: ``SRC/train/<class>/<image>`` and ``SRC/val/<class>/<image>``.
Classes are the sorted folder names of ``SRC/train``; ``classes`` of them are taken evenly
spaced over that list (position ``i * total // classes`` for ``i`` in ``range(classes)``),
which for ImageNet's sorted WordNet IDs spreads the subset over the whole hierarchy and does
not depend on the seed. Within a class, files are tried in a seeded random order until
``per_class`` of them decode; unreadable files are skipped and listed, never fatal.

Every (split, class) pair is one shard, decoded by a pool of worker processes and written
atomically to ``OUT/shards/`` (array first, then the JSON that marks it done), so an
interrupted prepare resumes where it stopped. When all shards are there they are joined
into ``OUT/{train,val}_{images,labels}.npy`` (memory-mappable) and ``OUT/manifest.json``,
which lists exactly which files went in, in array order.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import UserError

FORMAT = "rampsearch-prepared-images"
FORMAT_VERSION = 1
SPLITS = ("train", "val")
SHARD_DIR = "shards"
LAYOUT_HINT = ("an ImageFolder tree: DIR/train/<class>/<images> and DIR/val/<class>/<images> "
               "(ImageNet's flat val/ folder must first be sorted into class folders)")


@dataclass(frozen=True)
class Shard:
    """One split of one class: the unit of work and of resumption."""

    split: str
    label: int
    class_name: str
    per_class: int

    @property
    def name(self) -> str:
        return f"{self.split}-{self.label:05d}"


@dataclass
class ShardResult:
    shard: Shard
    images: np.ndarray
    files: list[str]  # relative to the source root, in array order
    skipped: list[tuple[str, str]]  # (file, reason)
    reused: bool = False


@dataclass
class PrepareReport:
    out: Path
    classes: list[str]
    counts: dict[str, int]  # images written per split
    skipped: dict[str, int]  # unreadable files per split
    shards_decoded: int  # in this run
    shards_reused: int  # finished by an earlier, interrupted run
    images_decoded: int  # kept images decoded in this run
    wall_s: float
    already_complete: bool = False
    short_classes: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.images_decoded / self.wall_s if self.wall_s > 0 else 0.0


def prepare_imagefolder(src: Path, out: Path, classes: int = 100, train_per_class: int = 260,
                        val_per_class: int = 50, res: int = 64, seed: int = 0,
                        workers: int | None = None, progress: bool = True,
                        on_shard: Callable[[ShardResult], None] | None = None) -> PrepareReport:
    """Prepare (or finish preparing) a proxy data set in ``out``; see the module docstring.

    ``workers`` decoding processes (default: one per CPU; 1 decodes in this process).
    ``on_shard`` is called after each shard is safely on disk.
    """
    started = time.perf_counter()
    src, out = Path(src), Path(out)
    settings = {"source": str(src.resolve()), "classes": classes,
                "train_per_class": train_per_class, "val_per_class": val_per_class,
                "res": res, "seed": seed}
    check_settings(settings)
    finished = read_manifest(out)
    if finished is not None:
        if finished.get("settings") != settings:
            raise UserError(f"{out} already holds data prepared with other settings "
                            f"({finished.get('settings')}); choose another --out or delete "
                            f"{out}.")
        return report_from_manifest(out, finished, time.perf_counter() - started)
    class_names = choose_classes(src, classes)
    shard_dir = out / SHARD_DIR
    claim_shard_dir(shard_dir, settings)
    per_class = {"train": train_per_class, "val": val_per_class}
    shards = [Shard(split, label, name, per_class[split])
              for split in SPLITS for label, name in enumerate(class_names)]
    done = {s.name for s in shards if (shard_dir / f"{s.name}.json").is_file()}
    todo = [s for s in shards if s.name not in done]
    meter = PrepareMeter(len(shards), len(done), enabled=progress)
    decoded_images = 0
    with closing(decode_shards(src, todo, res, seed, workers)) as results:
        for result in results:
            write_shard(shard_dir, result)
            decoded_images += len(result.files)
            meter.update(len(result.files), len(result.skipped))
            if on_shard is not None:
                on_shard(result)
    meter.close()
    manifest = join_shards(out, shards, settings, class_names)
    shutil.rmtree(shard_dir)
    report = report_from_manifest(out, manifest, time.perf_counter() - started)
    report.already_complete = False
    report.shards_decoded, report.shards_reused = len(todo), len(done)
    report.images_decoded = decoded_images
    return report


# ------------------------------------------------------------------------------ planning
def check_settings(settings: dict[str, Any]) -> None:
    for key, flag, low in (("classes", "--classes", 1), ("train_per_class", "--train-per-class", 1),
                           ("val_per_class", "--val-per-class", 1), ("res", "--res", 8),
                           ("seed", "--seed", 0)):
        if not isinstance(settings[key], int) or settings[key] < low:
            raise UserError(f"{flag} is {settings[key]!r}; it must be an integer of at least "
                            f"{low}.")


def class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def choose_classes(src: Path, classes: int) -> list[str]:
    """``classes`` folder names evenly spaced over the sorted classes of ``src/train``."""
    if not src.is_dir():
        raise UserError(f"{src} does not exist; --imagenet needs {LAYOUT_HINT}.")
    for split in SPLITS:
        if not (src / split).is_dir():
            raise UserError(f"{src} has no {split}/ folder; --imagenet needs {LAYOUT_HINT}.")
    available = class_folders(src / "train")
    if len(available) < classes:
        raise UserError(f"{src / 'train'} has {len(available)} class folders but --classes is "
                        f"{classes}; pass --classes {len(available)} or less.")
    chosen = [available[i * len(available) // classes] for i in range(classes)]
    missing = [name for name in chosen if not (src / "val" / name).is_dir()]
    if missing:
        raise UserError(f"{src / 'val'} lacks the class folder(s) {', '.join(missing[:5])}; "
                        f"--imagenet needs {LAYOUT_HINT}.")
    return chosen


def shard_candidates(src: Path, shard: Shard, seed: int) -> list[str]:
    """Every file of the class folder, in the shard's seeded order (relative to ``src``)."""
    folder = src / shard.split / shard.class_name
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    order = np.random.default_rng([seed, shard.label, SPLITS.index(shard.split)])
    return [f"{shard.split}/{shard.class_name}/{names[i]}" for i in order.permutation(len(names))]


def claim_shard_dir(shard_dir: Path, settings: dict[str, Any]) -> None:
    """Create the shard folder, or check that the unfinished run in it used these settings."""
    marker = shard_dir / "settings.json"
    if marker.is_file():
        earlier = json.loads(marker.read_text())
        if earlier != settings:
            raise UserError(f"{shard_dir.parent} holds an unfinished prepare with other settings "
                            f"({earlier}); rerun it with those options to finish it, or delete "
                            f"{shard_dir} to start over.")
        return
    shard_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(marker, json.dumps(settings, indent=2).encode())


# ------------------------------------------------------------------------------ decoding
def decode_image(path: Path, res: int) -> np.ndarray:
    """An image as (res, res, 3) uint8: shorter side to ``res``, centre crop, antialiased."""
    with Image.open(path) as image:
        # JPEG only: let the decoder scale down by 1/2..1/8 while staying >= res on both sides.
        image.draft("RGB", (res, res))
        image = image.convert("RGB")
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        # Resizing the centred square box == shorter side to res, then centre crop.
        image = image.resize((res, res), Image.Resampling.BICUBIC,
                             box=(left, top, left + side, top + side))
        return np.asarray(image, dtype=np.uint8)


def decode_shard(src: str, files: list[str], want: int, res: int
                 ) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """Decode ``files`` in order until ``want`` succeed (runs in a worker process)."""
    images: list[np.ndarray] = []
    kept: list[str] = []
    skipped: list[tuple[str, str]] = []
    for name in files:
        if len(kept) == want:
            break
        try:
            images.append(decode_image(Path(src) / name, res))
        except Exception as exc:  # PIL raises many types for bad files; none may stop a prepare
            skipped.append((name, f"{type(exc).__name__}: {exc}"))
            continue
        kept.append(name)
    stack = np.stack(images) if images else np.empty((0, res, res, 3), dtype=np.uint8)
    return stack, kept, skipped


def _ignore_interrupt() -> None:
    # Ctrl-C reaches the whole process group; the parent alone handles it and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def decode_shards(src: Path, shards: list[Shard], res: int, seed: int,
                  workers: int | None) -> Generator[ShardResult, None, None]:
    """Decoded shards, in completion order."""
    workers = workers or len(os.sched_getaffinity(0))
    if workers <= 1 or len(shards) <= 1:
        for shard in shards:
            candidates = shard_candidates(src, shard, seed)
            yield ShardResult(shard, *decode_shard(str(src), candidates, shard.per_class, res))
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch
    pool = ProcessPoolExecutor(max_workers=min(workers, len(shards)), mp_context=context,
                               initializer=_ignore_interrupt)
    try:
        queue = iter(shards)
        running: dict[Future, Shard] = {}

        def submit_next() -> None:
            shard = next(queue, None)
            if shard is not None:
                candidates = shard_candidates(src, shard, seed)
                future = pool.submit(decode_shard, str(src), candidates, shard.per_class, res)
                running[future] = shard

        for _ in range(2 * workers):  # a bounded queue keeps memory flat on 1000 classes
            submit_next()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                shard = running.pop(future)
                submit_next()
                yield ShardResult(shard, *future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------- writing
def write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(partial, path)


def write_shard(shard_dir: Path, result: ShardResult) -> None:
    """Array first, then the JSON that marks the shard done."""
    array_path = shard_dir / f"{result.shard.name}.npy"
    partial = array_path.with_name(f".{array_path.name}.partial")
    with open(partial, "wb") as stream:
        np.save(stream, result.images)
    os.replace(partial, array_path)
    record = {"split": result.shard.split, "label": result.shard.label,
              "class": result.shard.class_name, "files": result.files,
              "skipped": [list(item) for item in result.skipped]}
    write_atomic(shard_dir / f"{result.shard.name}.json", json.dumps(record).encode())


def join_shards(out: Path, shards: list[Shard], settings: dict[str, Any],
                class_names: list[str]) -> dict[str, Any]:
    """Concatenate the shards of each split into memory-mappable arrays; write the manifest."""
    shard_dir = out / SHARD_DIR
    records = {s.name: json.loads((shard_dir / f"{s.name}.json").read_text()) for s in shards}
    res = settings["res"]
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": FORMAT_VERSION, "source": "imagefolder",
        "settings": settings, "classes": class_names, "resolution": res, "seed": settings["seed"],
        "counts": {}, "skipped": {}, "files": {}, "skipped_files": {}, "short_classes": {},
        "class_selection": "evenly spaced over the sorted class folders of train/",
    }
    for split in SPLITS:
        split_shards = [s for s in shards if s.split == split]
        total = sum(len(records[s.name]["files"]) for s in split_shards)
        images_path, labels_path = out / f"{split}_images.npy", out / f"{split}_labels.npy"
        partial = images_path.with_name(f".{images_path.name}.partial")
        images = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8,
                                           shape=(total, res, res, 3))
        labels = np.empty(total, dtype=np.int64)
        files: list[str] = []
        skipped: list[list[str]] = []
        position = 0
        for shard in split_shards:
            record = records[shard.name]
            count = len(record["files"])
            if count:
                images[position:position + count] = np.load(shard_dir / f"{shard.name}.npy")
            labels[position:position + count] = shard.label
            position += count
            files.extend(record["files"])
            skipped.extend(record["skipped"])
            if count < shard.per_class:
                manifest["short_classes"].setdefault(split, {})[shard.class_name] = count
        images.flush()
        del images
        os.replace(partial, images_path)
        labels_partial = labels_path.with_name(f".{labels_path.name}.partial")
        with open(labels_partial, "wb") as stream:
            np.save(stream, labels)
        os.replace(labels_partial, labels_path)
        manifest["counts"][split] = total
        manifest["skipped"][split] = len(skipped)
        manifest["files"][split] = files
        manifest["skipped_files"][split] = skipped
    manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1).encode())
    return manifest


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of a finished prepare in ``out``, or None."""
    path = out / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is unreadable ({exc}); delete {out} and prepare it again.") \
            from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not a rampsearch data manifest; choose another --out.")
    return manifest


def report_from_manifest(out: Path, manifest: dict[str, Any], wall_s: float) -> PrepareReport:
    return PrepareReport(out=out, classes=list(manifest["classes"]),
                         counts=dict(manifest["counts"]), skipped=dict(manifest["skipped"]),
                         shards_decoded=0, shards_reused=0, images_decoded=0, wall_s=wall_s,
                         already_complete=True, short_classes=dict(manifest["short_classes"]))


# ------------------------------------------------------------------------------ progress
class PrepareMeter:
    """One stderr line, rewritten in place on a terminal, every ~10% otherwise."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self.images = self.skipped = 0
        self.started = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.last_tenth = -1
        if enabled and done:
            print(f"resuming: {done} of {total} shards already done", file=sys.stderr)

    def update(self, images: int, skipped: int) -> None:
        self.done += 1
        self.images += images
        self.skipped += skipped
        if not self.enabled:
            return
        tenth = 10 * self.done // max(self.total, 1)
        if not self.tty and tenth == self.last_tenth:
            return
        self.last_tenth = tenth
        rate = self.images / max(time.perf_counter() - self.started, 1e-9)
        filled = 30 * self.done // max(self.total, 1)
        line = (f"prepare [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} shards, "
                f"{self.images} images, {rate:.0f} img/s, {self.skipped} skipped")
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr,
              flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)
