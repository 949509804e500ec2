"""`rampsearch data prepare` on a small generated ImageFolder of real JPEG files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rampsearch.cli import main
from rampsearch.data import load_proxy_data, prepare_imagefolder
from rampsearch.errors import UserError

# One colour per class, so every prepared image can be checked against its label.
CLASS_COLOURS = {"n001": (220, 30, 30), "n002": (30, 200, 40), "n003": (40, 50, 210),
                 "n004": (200, 200, 30)}
TRAIN_FILES, VAL_FILES = 5, 3


def write_jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int],
               rng: np.random.Generator) -> None:
    noise = rng.integers(-12, 13, (size[1], size[0], 3))
    pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


@pytest.fixture(scope="module")
def imagefolder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/ and val/ with four classes; class n001 has a truncated JPEG and class n003 a
    text file among its training images."""
    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    for name, colour in CLASS_COLOURS.items():
        for split, count in (("train", TRAIN_FILES), ("val", VAL_FILES)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                size = (int(rng.integers(48, 120)), int(rng.integers(48, 120)))
                write_jpeg(folder / f"{name}_{i}.JPEG", colour, size, rng)
    whole = (root / "train" / "n001" / "n001_0.JPEG").read_bytes()
    (root / "train" / "n001" / "n001_broken.JPEG").write_bytes(whole[: len(whole) // 2])
    (root / "train" / "n003" / "notes.txt").write_text("not an image\n")
    (root / "train" / "n003" / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored
    return root


def test_prepare_skips_unreadable_files_and_keeps_the_rest(imagefolder: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    report = prepare_imagefolder(imagefolder, out, classes=4, train_per_class=10,
                                 val_per_class=2, res=32, workers=2, progress=False)
    assert report.counts == {"train": 4 * TRAIN_FILES, "val": 4 * 2}
    assert report.skipped == {"train": 2, "val": 0}
    manifest = json.loads((out / "manifest.json").read_text())
    skipped = sorted(Path(name).name for name, _ in manifest["skipped_files"]["train"])
    assert skipped == ["n001_broken.JPEG", "notes.txt"]
    assert manifest["short_classes"]["train"] == {name: TRAIN_FILES for name in CLASS_COLOURS}
    assert len(manifest["files"]["train"]) == 4 * TRAIN_FILES
    assert not (out / "shards").exists()

    images = np.load(out / "train_images.npy", mmap_mode="r")
    labels = np.load(out / "train_labels.npy")
    assert images.shape == (4 * TRAIN_FILES, 32, 32, 3) and images.dtype == np.uint8
    # Images sit in manifest order and carry their class's colour.
    for image, label, name in zip(images, labels, manifest["files"]["train"], strict=True):
        assert name.split("/")[1] == manifest["classes"][label]
        colour = np.array(CLASS_COLOURS[manifest["classes"][label]])
        assert np.abs(image.reshape(-1, 3).mean(0) - colour).max() < 12

    data = load_proxy_data(str(out), 32, train_samples=8, val_samples=4)
    assert data.class_names == list(CLASS_COLOURS)
    assert np.bincount(data.train_labels).tolist() == [2, 2, 2, 2]
    assert data.manifest["source"] == "imagefolder"
    assert load_proxy_data(str(out), 16).train_images.shape == (4 * TRAIN_FILES, 16, 16, 3)


def test_classes_are_evenly_spaced_and_images_centre_cropped(tmp_path: Path) -> None:
    root = tmp_path / "src"
    rng = np.random.default_rng(1)
    for index in range(6):
        for split in ("train", "val"):
            folder = root / split / f"c{index}"
            folder.mkdir(parents=True)
            # A wide image: red centre square between blue side bands.
            pixels = np.zeros((60, 180, 3), dtype=np.uint8)
            pixels[:, :, 2] = 255
            pixels[:, 60:120] = (255, 0, 0)
            Image.fromarray(pixels).save(folder / "wide.png")
            write_jpeg(folder / "plain.jpg", (90, 90, 90), (64, 64), rng)
    report = prepare_imagefolder(root, tmp_path / "out", classes=3, train_per_class=2,
                                 val_per_class=1, res=16, workers=1, progress=False)
    assert report.classes == ["c0", "c2", "c4"]
    data = load_proxy_data(str(tmp_path / "out"), 16)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    wide = manifest["files"]["train"].index("train/c2/wide.png")
    centre = data.train_images[wide].reshape(-1, 3).astype(int)
    assert (centre[:, 0] > 200).all() and (centre[:, 2] < 60).all()


def test_interrupted_prepare_resumes_without_redoing_shards(imagefolder: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    options = dict(classes=4, train_per_class=3, val_per_class=2, res=24, seed=5,
                   progress=False)
    first_run: list[str] = []

    def interrupt_after_three(result) -> None:
        first_run.append(result.shard.name)
        if len(first_run) == 3:
            raise KeyboardInterrupt  # what Ctrl-C does half way through

    with pytest.raises(KeyboardInterrupt):
        prepare_imagefolder(imagefolder, out, workers=1, on_shard=interrupt_after_three,
                            **options)
    assert not (out / "manifest.json").exists()
    assert sorted(p.stem for p in (out / "shards").glob("*.json") if p.stem != "settings") \
        == sorted(first_run)
    with pytest.raises(UserError, match="unfinished prepare"):
        load_proxy_data(str(out), 24)

    second_run: list[str] = []
    report = prepare_imagefolder(imagefolder, out, workers=2,
                                 on_shard=lambda r: second_run.append(r.shard.name), **options)
    assert set(second_run).isdisjoint(first_run)
    assert len(first_run) + len(second_run) == 8  # 4 classes x 2 splits
    assert (report.shards_reused, report.shards_decoded) == (3, 5)

    straight = prepare_imagefolder(imagefolder, tmp_path / "straight", workers=1, **options)
    assert straight.counts == report.counts == {"train": 12, "val": 8}
    for name in ("train_images", "train_labels", "val_images", "val_labels"):
        assert np.array_equal(np.load(out / f"{name}.npy"),
                              np.load(tmp_path / "straight" / f"{name}.npy"))
    again = prepare_imagefolder(imagefolder, out, workers=1, **options)
    assert again.already_complete and again.images_decoded == 0


def test_prepare_refuses_other_settings_in_the_same_out(imagefolder: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_imagefolder(imagefolder, out, classes=2, train_per_class=1, val_per_class=1,
                        res=16, workers=1, progress=False)
    with pytest.raises(UserError, match="other settings"):
        prepare_imagefolder(imagefolder, out, classes=2, train_per_class=1, val_per_class=1,
                            res=32, workers=1, progress=False)


def test_prepare_errors_name_the_fix(imagefolder: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="train/<class>"):
        prepare_imagefolder(imagefolder / "train", tmp_path / "a", progress=False)
    with pytest.raises(UserError, match="--classes 4 or less"):
        prepare_imagefolder(imagefolder, tmp_path / "b", classes=100, progress=False)
    with pytest.raises(UserError, match="--res"):
        prepare_imagefolder(imagefolder, tmp_path / "c", classes=2, res=0, progress=False)


def test_cli_prepare_and_show(imagefolder: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = main(["data", "prepare", "--imagenet", str(imagefolder), "--out", str(out),
                 "--classes", "2", "--train-per-class", "2", "--val-per-class", "1",
                 "--res", "16", "--workers", "1", "--quiet"])
    assert code == 0
    assert "4 train + 2 val images" in capsys.readouterr().out
    assert main(["data", "show", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["counts"] == {"train": 4, "val": 2} and "files" not in shown
    assert main(["data", "prepare", "--imagenet", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "other")]) == 2
    assert "ImageFolder" in capsys.readouterr().err
