"""Loading proxy data: Fashion-MNIST from Debian's package, synthetic images, bad sources."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from rampsearch.data import balanced_indices, describe_source, fashion_mnist, load_proxy_data
from rampsearch.data.cache import CACHE_ENV
from rampsearch.errors import UserError

needs_fashion_mnist = pytest.mark.skipif(
    not (fashion_mnist.DEFAULT_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (sudo apt-get install "
           "dataset-fashion-mnist)")


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(fashion_mnist.DIR_ENV, raising=False)
    return tmp_path / "cache"


@needs_fashion_mnist
def test_fashion_mnist_loads_balanced_rgb_at_the_asked_resolution(private_cache: Path) -> None:
    data = load_proxy_data("fashion-mnist", 64, train_samples=500, val_samples=200, seed=3)
    assert data.train_images.shape == (500, 64, 64, 3)
    assert data.val_images.shape == (200, 64, 64, 3)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64
    assert data.class_names[0] == "T-shirt/top" and data.num_classes == 10
    assert np.bincount(data.train_labels).tolist() == [50] * 10
    assert np.bincount(data.val_labels).tolist() == [20] * 10
    # Grayscale repeated to three channels; real garments, not blank frames.
    assert np.array_equal(data.train_images[..., 0], data.train_images[..., 2])
    assert 20 < data.train_images.mean() < 120
    assert data.manifest["source"] == "fashion-mnist" and data.manifest["resolution"] == 64
    assert data.manifest["subset"] == {"train_samples": 500, "val_samples": 200, "seed": 3}
    # The decoded arrays are cached, and a second load gives the same subset.
    assert sorted(p.name for p in private_cache.glob("fashion-mnist/*/*.npy")) == [
        "train-images.npy", "train-labels.npy", "val-images.npy", "val-labels.npy"]
    again = load_proxy_data("fashion-mnist", 64, train_samples=500, val_samples=200, seed=3)
    assert np.array_equal(again.train_images, data.train_images)
    other = load_proxy_data("fashion-mnist", 64, train_samples=500, val_samples=200, seed=4)
    assert not np.array_equal(other.train_images, data.train_images)


@needs_fashion_mnist
def test_fashion_mnist_whole_split_and_description(private_cache: Path) -> None:
    data = load_proxy_data("fashion-mnist", 28, val_samples=10)
    assert data.train_images.shape == (60000, 28, 28, 3)
    assert set(np.unique(data.train_labels)) == set(range(10))
    summary = describe_source("fashion-mnist")
    assert summary["counts"] == {"train": 60000, "val": 10000}


def test_missing_fashion_mnist_names_the_package(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fashion_mnist.DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        load_proxy_data("fashion-mnist", 64)
    (tmp_path / "partial").mkdir()
    monkeypatch.setenv(fashion_mnist.DIR_ENV, str(tmp_path / "partial"))
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz is missing"):
        load_proxy_data("fashion-mnist", 64)


def test_damaged_idx_file_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          private_cache: Path) -> None:
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(tmp_path / f"{name}.gz", "wb") as stream:
            stream.write(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") + b"short")
    monkeypatch.setenv(fashion_mnist.DIR_ENV, str(tmp_path))
    with pytest.raises(UserError, match="truncated"):
        load_proxy_data("fashion-mnist", 64)


def test_synthetic_is_deterministic_balanced_and_seeded() -> None:
    data = load_proxy_data("synthetic", 64, train_samples=200, val_samples=50, seed=7)
    assert data.train_images.shape == (200, 64, 64, 3) and data.val_images.shape == (50, 64, 64, 3)
    assert np.bincount(data.train_labels).tolist() == [20] * 10
    same = load_proxy_data("synthetic", 64, train_samples=200, val_samples=50, seed=7)
    assert np.array_equal(same.train_images, data.train_images)
    assert np.array_equal(same.val_labels, data.val_labels)
    other = load_proxy_data("synthetic", 64, train_samples=200, val_samples=50, seed=8)
    assert not np.array_equal(other.train_images, data.train_images)
    assert not np.array_equal(data.train_images[:50], data.val_images)


def test_unknown_source_and_bad_counts_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="rampsearch data prepare --imagenet"):
        load_proxy_data("imagenet-please", 64)
    with pytest.raises(UserError, match="no manifest.json"):
        load_proxy_data(str(tmp_path), 64)
    with pytest.raises(UserError, match="at least 1"):
        load_proxy_data("synthetic", 64, train_samples=0)
    with pytest.raises(UserError, match="resolution"):
        load_proxy_data("synthetic", 4)


def test_balanced_indices_fill_small_classes_first_and_grow_monotonically() -> None:
    labels = np.array([0] * 3 + [1] * 50 + [2] * 50)
    picked = balanced_indices(labels, 3, 30, seed=1)
    assert np.bincount(labels[picked]).tolist() == [3, 14, 13]
    larger = balanced_indices(labels, 3, 60, seed=1)
    assert set(picked) <= set(larger)
    with pytest.raises(UserError, match="at most 103"):
        balanced_indices(labels, 3, 104, seed=1)
