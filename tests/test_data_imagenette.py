"""`rampsearch data get imagenette`: from a loopback HTTP server (whole, interrupted,
truncated, wrong layout), from the archive beside the checkout, and `--data imagenette`
before and after, through real Ray and SQLite."""

from __future__ import annotations

import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_runs import load, rampsearch
from conftest import IMAGENETTE_ARCHIVE
from PIL import Image

from rampsearch.data import imagenette, load_proxy_data
from rampsearch.errors import UserError

WNIDS = [f"n0{i:07d}" for i in range(10)]
TINY_COUNTS = {"train": 3, "val": 2}  # per class
TINY_RANGE = ({"train": 30, "val": 20}, {"train": 30, "val": 20})


def write_tree(root: Path, wnids: list[str], splits: tuple[str, ...] = ("train", "val")) -> None:
    """Imagenette's layout with a few small JPEGs a class: square ones, as in the square
    copy, and aspect-kept ones (short side 160), as in the public archive."""
    rng = np.random.default_rng(0)
    for split in splits:
        for label, wnid in enumerate(wnids):
            folder = root / "imagenette2-160" / split / wnid
            folder.mkdir(parents=True)
            for i in range(TINY_COUNTS[split]):
                size = (160, 160) if i % 2 == 0 else (213, 160)
                pixels = np.full((size[1], size[0], 3), 20 * label, dtype=np.uint8)
                pixels += rng.integers(0, 8, pixels.shape, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG", quality=90)


def tgz_bytes(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root / "imagenette2-160", arcname="imagenette2-160")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    made = {}
    for name, wnids, splits in (("tiny", WNIDS, ("train", "val")),
                                ("no-val", WNIDS, ("train",)),
                                ("nine-classes", WNIDS[:9], ("train", "val"))):
        root = tmp_path_factory.mktemp(name)
        write_tree(root, wnids, splits)
        made[name] = tgz_bytes(root)
    return made


@pytest.fixture(scope="module")
def server(archives: dict[str, bytes]) -> Iterator[str]:
    """Loopback HTTP: /NAME.tgz serves an archive whole; /cut-NAME.tgz promises the whole
    archive and sends 60% of it, then closes (a download interrupted); /short-NAME.tgz is a
    complete transfer of the first 60% (a truncated archive)."""
    routes = {}
    for name, body in archives.items():
        cut = body[: len(body) * 6 // 10]
        routes[f"/{name}.tgz"] = (body, len(body))
        routes[f"/cut-{name}.tgz"] = (cut, len(body))
        routes[f"/short-{name}.tgz"] = (cut, len(cut))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            if self.path not in routes:
                self.send_error(404)
                return
            body, length = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAMPSEARCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def leftovers(cache: Path) -> list[str]:
    home = cache / "imagenette"
    return sorted(p.name for p in home.iterdir()) if home.is_dir() else []


def test_download_prepares_every_resolution_from_both_image_forms(server: str, cache: Path):
    url = f"{server}/tiny.tgz"
    report = imagenette.get_imagenette(url, (32, 48), progress=False, count_range=TINY_RANGE)
    assert report.counts == {"train": 30, "val": 20}
    assert report.resolutions == [32, 48]
    assert leftovers(cache) == ["32px", "48px"]  # no temporary folder stays behind
    data = load_proxy_data("imagenette", 32)
    assert data.train_images.shape == (30, 32, 32, 3) and data.val_images.shape[0] == 20
    assert sorted(set(data.train_labels.tolist())) == list(range(10))
    manifest = json.loads((cache / "imagenette" / "48px" / "manifest.json").read_text())
    assert manifest["settings"]["source"] == url
    # The nearest larger prepared size is read for a size never prepared.
    assert imagenette.prepared_dir(40) == cache / "imagenette" / "48px"
    again = imagenette.get_imagenette(f"{server}/absent.tgz", (32,), progress=False,
                                      count_range=TINY_RANGE)
    assert again.resolutions == [32, 48]  # already there: nothing fetched


@pytest.mark.parametrize("path, words", [
    ("cut-tiny.tgz", "transfer ended after"),
    ("short-tiny.tgz", "is not a whole .tgz archive"),
    ("no-val.tgz", "no train/ and val/ folders"),
    ("nine-classes.tgz", "9 train and 9 val class folders"),
    ("tiny.tgz", "holds 30 images"),  # the real count check: a tiny archive is not Imagenette
    ("absent.tgz", "HTTP 404 Not Found"),
])
def test_a_bad_download_is_one_error_and_leaves_nothing(server: str, cache: Path, path: str,
                                                       words: str):
    with pytest.raises(UserError, match=words):
        imagenette.get_imagenette(f"{server}/{path}", (32,), progress=False)
    assert leftovers(cache) == []


def test_data_imagenette_before_get_names_the_command(cache: Path):
    done = rampsearch("data", "show", "imagenette")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "rampsearch data get imagenette" in done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_local_archive_then_a_search_on_imagenette(tmp_path: Path, cache: Path):
    """The archive beside the checkout, as `make run` prepares it, then a small search on a
    few hundred of its images through a local Ray and SQLite, picked by `--data auto`."""
    if not IMAGENETTE_ARCHIVE.is_file():
        pytest.skip(f"no Imagenette archive at {IMAGENETTE_ARCHIVE}")
    done = rampsearch("data", "get", "imagenette", "--from", str(IMAGENETTE_ARCHIVE),
                      "--res", "64", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "9469 train + 3925 val images" in done.stdout
    run = rampsearch("run", "--budget", "4.8GFLOPs", "--trials", "1", "--reeval-top", "0",
                     "--train-samples", "320", "--val-samples", "100", "--batch-size", "32",
                     "--width", "0.125", "--results", str(tmp_path), "--study", "nette")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "data       imagenette" in run.stdout
    assert "320 train / 100 val images of imagenette (10 classes)" in run.stdout
    study = load(tmp_path, "nette")
    ended = [t for t in study.get_trials() if t.user_attrs.get("status") == "completed"]
    assert len(ended) == 6  # 1 candidate + 5 baselines
    assert all(t.user_attrs["val_loss"] > 0 for t in ended)
