"""The full-recipe trainer on a tiny generated ImageFolder: real timm data pipeline, real
training steps, checkpoints, resume, and one clear error for each kind of bad input."""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import iformer
from rampsearch.cli import main
from rampsearch.errors import UserError
from rampsearch.train import main as train_main
from rampsearch.training.recipe import load_recipe, recipe_for_model
from rampsearch.training.trainer import load_weights_file, train

CLASSES = 3
TINY = iformer.IFormerConfig(depths=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32],
                             num_heads=[1, 2, 3, 4], attention_heads=[0, 1, 2, 3], img_size=32,
                             num_classes=CLASSES)


def write_image_folder(root: Path, train_per_class: int = 4, val_per_class: int = 2) -> Path:
    """48x48 JPEGs, one dominant colour per class."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label in range(CLASSES):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                pixels = rng.integers(0, 60, (48, 48, 3))
                pixels[..., label] += 180
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.jpg")
    return root


def write_recipe(path: Path, **overrides: object) -> Path:
    """The paper's recipe for the tiny model, shortened to a few steps."""
    short = dict(epochs=3, warmup_epochs=1, batch_size=4, workers=0, model_ema_decay=0.9)
    recipe = dataclasses.replace(recipe_for_model(TINY), **{**short, **overrides})
    path.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imagefolder"))


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_recipe(tmp_path_factory.mktemp("config") / "train.yaml")


def read_rows(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.startswith("rampsearch: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err


@pytest.mark.slow
def test_trains_checkpoints_and_resumes_on_the_same_schedule(data: Path, config_file: Path,
                                                             tmp_path: Path, capsys) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    code, out, _ = run_cli(["train", str(config_file), "--data", str(data), "--output",
                            str(straight)], capsys)
    assert code == 0 and "done: 3 epochs" in out
    whole = read_rows(straight / "metrics.csv")
    assert [row["epoch"] for row in whole] == [1, 2, 3]
    recipe = load_recipe(config_file)
    assert whole[0]["lr"] == pytest.approx(recipe.warmup_lr)  # warm-up starts low ...
    assert whole[1]["lr"] > whole[2]["lr"] > recipe.min_lr  # ... then the cosine decays
    for row in whole:
        assert 0 <= row["top1"] <= 100 and row["top5"] == 100.0  # top-5 of 3 classes
        assert np.isfinite(row["train_loss"]) and np.isfinite(row["ema_val_loss"])

    # Interrupted after epoch 2, then resumed from last.pth by the command line.
    first = train(recipe, data, resumed, on_epoch=lambda row: row["epoch"] == 2,
                  log=lambda _: None)
    assert first.status == "stopped" and first.epochs_done == 2
    code, out, _ = run_cli(["train", str(config_file), "--data", str(data), "--output",
                            str(resumed), "--resume"], capsys)
    assert code == 0 and "resuming" in out and "after epoch 2 of 3" in out
    again = read_rows(resumed / "metrics.csv")
    assert [row["epoch"] for row in again] == [1, 2, 3]
    assert [row["lr"] for row in again] == [row["lr"] for row in whole]
    for a, b in zip(again, whole):  # same data order, augmentation and weights
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)

    saved = torch.load(resumed / "last.pth", map_location="cpu", weights_only=True)
    assert saved["epoch"] == 3 and saved["recipe"] == recipe.to_dict()
    assert iformer.IFormerConfig.from_dict(saved["model_config"]) == TINY
    best = torch.load(resumed / "best.pth", map_location="cpu", weights_only=True)
    assert best["epoch"] == best["best_epoch"] == saved["best_epoch"]
    model = iformer.create_model(TINY)
    model.load_state_dict(saved["model"])
    model.load_state_dict(saved["model_ema"])


def test_a_nan_validation_loss_ends_the_run_as_diverged(data: Path, tmp_path: Path,
                                                         capsys) -> None:
    """Training normalises with batch statistics and evaluation with the running ones, so
    running variances far below zero leave the training loss finite and the validation
    loss NaN: the engine ends the run after epoch 1, before its checkpoint."""
    torch.manual_seed(0)
    weights = iformer.create_model(TINY).state_dict()
    for key in weights:
        if key.endswith("running_var"):
            weights[key] = torch.full_like(weights[key], -1e6)
    torch.save(weights, tmp_path / "broken.pth")
    config = write_recipe(tmp_path / "train.yaml", epochs=2, warmup_epochs=0)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["train", str(config), "--data", str(data), "--output", str(out),
                                 "--init", str(tmp_path / "broken.pth")], capsys)
    assert code == 1, err
    assert "training diverged: validation loss became nan after epoch 1" in err
    assert "stopped: validation loss became nan" in stdout
    assert not (out / "last.pth").exists() and not (out / "metrics.csv").exists()


@pytest.mark.parametrize("text, words", [
    ("model: [iformer_small\n", ["not valid YAML at line"]),
    ("- 1\n- 2\n", ["does not hold a mapping"]),
    ("model: iformer_small\nlog_interval: 50\n", ["log_interval", "timm's train.py"]),
    ("model: iformer_small\nmodel_kwargs: {attention_heads: [1, 2]}\nnum_classes: 3\n",
     ["attention_heads has 2 entries but depths sum to 18"]),
    ("model: iformer_small\nmodel_kwargs: {num_classes: 3}\n", ["passes itself"]),
    ("model: resnet50\n", ["unknown iFormer preset 'resnet50'"]),
    ("model: iformer_small\nlr: fast\n", ["lr is 'fast'", "a number"]),
    ("model: iformer_small\nmixup: 0.8\nbatch_size: 3\n", ["batch_size is 3", "even"]),
    ("depths: [1, 1, 1, 1]\nembed_dims: [8, 16, 24, 32]\nnum_heads: [1, 2, 3, 4]\n"
     "attention_heads: [0, 1, 2, 9]\n", ["block 3 asks for 9 attention heads"]),
])
def test_a_bad_config_gets_one_clear_error(data: Path, tmp_path: Path, capsys, text: str,
                                           words: list[str]) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    code, _, err = run_cli(["train", str(path), "--data", str(data)], capsys)
    assert_one_line_error(code, err, *words)


def test_a_missing_config_file(data: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["train", str(tmp_path / "none.yaml"), "--data", str(data)], capsys)
    assert_one_line_error(code, err, "cannot read the training config")
    # `python -m rampsearch.train` (what torchrun starts) answers the same way.
    code = train_main([str(tmp_path / "none.yaml"), "--data", str(data)])
    assert_one_line_error(code, capsys.readouterr().err, "cannot read the training config")


def make_bad_folder(root: Path, kind: str) -> Path:
    if kind == "missing":
        return root / "nothing-here"
    write_image_folder(root)
    if kind == "no val":
        shutil.rmtree(root / "val")
    elif kind == "loose images":
        for path in (root / "val").rglob("*.jpg"):
            path.rename(root / "val" / f"{path.parent.name}-{path.name}")
        for folder in (root / "val").iterdir():
            if folder.is_dir():
                folder.rmdir()
    elif kind == "class mismatch":
        (root / "val" / "class2").rename(root / "val" / "other")
    elif kind == "empty class":
        (root / "train" / "class3").mkdir()
    elif kind == "four classes":
        shutil.copytree(root / "train" / "class0", root / "train" / "class3")
        shutil.copytree(root / "val" / "class0", root / "val" / "class3")
    return root


@pytest.mark.parametrize("kind, words", [
    ("missing", ["is not a folder", "ImageFolder"]),
    ("no val", ["has no val/ folder"]),
    ("loose images", ["holds images but no class folders"]),
    ("class mismatch", ["differ", "'class2'", "'other'"]),
    ("empty class", ["without images: class3"]),
    ("four classes", ["has 4 classes but the model has num_classes 3"]),
])
def test_a_data_folder_of_the_wrong_shape(config_file: Path, tmp_path: Path, capsys, kind: str,
                                          words: list[str]) -> None:
    folder = make_bad_folder(tmp_path / "data", kind)
    code, _, err = run_cli(["train", str(config_file), "--data", str(folder), "--output",
                            str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, *words)


def test_too_few_images_for_a_batch(data: Path, tmp_path: Path, capsys) -> None:
    config = write_recipe(tmp_path / "train.yaml")
    code, _, err = run_cli(["train", str(config), "--data", str(data), "--batch-size", "64",
                            "--output", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, "not one full batch of 64", "lower --batch-size")


def test_resume_and_output_mistakes(data: Path, config_file: Path, tmp_path: Path,
                                    capsys) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(["train", str(config_file), "--data", str(data), "--output", str(out),
                            "--resume"], capsys)
    assert_one_line_error(code, err, "holds no last.pth")
    out.mkdir()
    (out / "last.pth").write_bytes(b"not a checkpoint")
    code, _, err = run_cli(["train", str(config_file), "--data", str(data), "--output",
                            str(out)], capsys)
    assert_one_line_error(code, err, "already holds a run", "--resume")
    code, _, err = run_cli(["train", str(config_file), "--data", str(data), "--output", str(out),
                            "--resume"], capsys)
    assert_one_line_error(code, err, "not a readable PyTorch checkpoint")


def test_released_weights_only_fit_the_papers_ramp(data: Path, config_file: Path,
                                                   tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["train", str(config_file), "--data", str(data), "--output",
                            str(tmp_path / "out"), "--init", "released"], capsys)
    assert_one_line_error(code, err, "--init released", "depths, embed_dims, num_heads",
                          "--init PATH")


def test_weights_file_initialises_the_model(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = iformer.create_model(TINY)
    torch.save({"model": source.state_dict()}, tmp_path / "weights.pth")
    target = iformer.create_model(TINY)
    load_weights_file(target, tmp_path / "weights.pth")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)

    # Another number of classes: everything but the classifier is taken.
    ten = iformer.create_model(dataclasses.replace(TINY, num_classes=10))
    assert "classifier left fresh" in load_weights_file(ten, tmp_path / "weights.pth")
    assert torch.equal(ten.state_dict()["norm.weight"], source.state_dict()["norm.weight"])

    other_ramp = iformer.create_model(TINY.with_ramp([1, 1, 2, 3]))
    with pytest.raises(UserError, match="does not fit this model .*another shape"):
        load_weights_file(other_ramp, tmp_path / "weights.pth")

    # Pickled objects beside the tensors are refused by weights_only loading.
    torch.save({"model": source.state_dict(), "args": Path("x")}, tmp_path / "pickled.pth")
    with pytest.raises(UserError, match="pickled Python objects"):
        load_weights_file(target, tmp_path / "pickled.pth")


@pytest.mark.slow
def test_torchrun_trains_with_two_processes(data: Path, tmp_path: Path) -> None:
    config = write_recipe(tmp_path / "train.yaml", epochs=1, warmup_epochs=0)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "rampsearch.train",
         str(config), "--data", str(data), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 process(es) x 4 = total batch 8" in result.stdout
    assert result.stdout.count("done: 1 epoch;") == 1  # rank 0 speaks for the run
    rows = read_rows(tmp_path / "out" / "metrics.csv")
    assert [row["epoch"] for row in rows] == [1]
    saved = torch.load(tmp_path / "out" / "last.pth", map_location="cpu", weights_only=True)
    assert not any(key.startswith("module.") for key in saved["model"])
