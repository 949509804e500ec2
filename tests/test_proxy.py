"""The proxy recipe: settings, the proxy model, and real short trainings on synthetic data."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

import iformer
from iformer import IFormerConfig
from rampsearch.data import load_proxy_data
from rampsearch.errors import UserError
from rampsearch.options import add_proxy_arguments, settings_from_args
from rampsearch.training.proxy import (
    ProxySettings,
    proxy_model_config,
    random_shift_flip,
    train_proxy,
)

# Four blocks, one per stage, covering the ends of the ramp (pure conv, pure attention).
TINY = IFormerConfig(depths=[1, 1, 1, 1], embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4],
                     attention_heads=[0, 1, 2, 4])
QUICK = ProxySettings(width=1.0, epochs=3, train_samples=1000, val_samples=500, batch_size=64,
                      lr=3e-3, warmup_epochs=0.5)


@pytest.fixture(scope="module")
def synthetic() -> object:
    return load_proxy_data("synthetic", 64, train_samples=1000, val_samples=500, seed=1)


def test_training_on_synthetic_ends_well_above_chance(synthetic) -> None:
    seen: list[int] = []
    result = train_proxy(TINY, synthetic, QUICK, on_epoch=lambda m: seen.append(m.epoch),
                         num_threads=1)
    assert result.status == "completed" and result.reason == ""
    assert seen == [1, 2, 3] and result.epochs_run == 3
    assert result.top1 > 50  # chance is 10 %
    assert result.top5 >= result.top1
    assert result.history[-1].val_loss < result.history[0].val_loss
    assert result.history[-1].top1 == result.top1
    assert all(m.images_per_s > 0 for m in result.history)
    assert result.extra["embed_dims"] == [16, 32, 48, 64]
    assert result.to_dict()["history"][0]["epoch"] == 1


def test_same_seed_same_metrics_other_seed_other_metrics(synthetic) -> None:
    settings = ProxySettings(width=1.0, epochs=1, train_samples=256, val_samples=128,
                             batch_size=64, lr=3e-3, drop_path_rate=0.1)
    first = train_proxy(TINY, synthetic, settings, num_threads=1)
    second = train_proxy(TINY, synthetic, settings, num_threads=1)
    third = train_proxy(TINY, synthetic, ProxySettings(**{**settings.to_dict(), "seed": 1}),
                        num_threads=1)
    metrics = [(m.train_loss, m.val_loss, m.top1, m.top5) for m in first.history]
    assert metrics == [(m.train_loss, m.val_loss, m.top1, m.top5) for m in second.history]
    assert metrics != [(m.train_loss, m.val_loss, m.top1, m.top5) for m in third.history]


def test_a_nan_loss_ends_the_run_as_diverged(synthetic) -> None:
    settings = ProxySettings(width=1.0, epochs=2, train_samples=256, val_samples=128,
                             batch_size=64, lr=1e6)
    result = train_proxy(TINY, synthetic, settings, num_threads=1)
    assert result.status == "diverged"
    assert "nan" in result.reason or "inf" in result.reason
    assert result.epochs_run == 0 and result.top1 == 0.0 and math.isnan(result.val_loss)
    assert result.to_dict()["val_loss"] is None


def test_the_callback_stops_the_run(synthetic) -> None:
    settings = ProxySettings(width=1.0, epochs=3, train_samples=128, val_samples=64,
                             batch_size=64)
    result = train_proxy(TINY, synthetic, settings, on_epoch=lambda m: m.epoch == 1,
                         num_threads=1)
    assert result.status == "stopped" and "after epoch 1" in result.reason
    assert result.epochs_run == 1 and result.top1 == result.history[0].top1


def test_training_leaves_the_caller_rng_and_threads_alone(synthetic) -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    settings = ProxySettings(width=1.0, epochs=1, train_samples=64, val_samples=64,
                             batch_size=64)
    train_proxy(TINY, synthetic, settings, num_threads=1)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_data_is_cut_to_the_settings_or_refused(synthetic) -> None:
    too_many = ProxySettings(width=1.0, epochs=1, train_samples=2000, val_samples=64,
                             batch_size=64)
    with pytest.raises(UserError, match="1000 train images"):
        train_proxy(TINY, synthetic, too_many, num_threads=1)


def test_proxy_model_keeps_the_ramp_and_shrinks_head_dim() -> None:
    full = iformer.preset("iformer_small")
    proxy = proxy_model_config(full, ProxySettings(), num_classes=10)
    assert proxy.attention_heads == full.attention_heads
    assert proxy.num_heads == full.num_heads
    assert proxy.head_dims == [8, 8, 8, 8] and proxy.embed_dims == [24, 48, 80, 96]
    assert proxy.input_size == (64, 64) and proxy.num_classes == 10
    assert proxy.high_ratios() == full.high_ratios()


def test_random_shift_flip_moves_whole_images() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 8 * 8 * 3, dtype=torch.int64).reshape(2, 8, 8, 3).to(torch.uint8)
    flipped_or_not = random_shift_flip(images, 0, generator)
    for original, out in zip(images, flipped_or_not, strict=True):
        assert torch.equal(out, original) or torch.equal(out, original.flip(1))
    shifted = random_shift_flip(images, 2, generator)
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8


def test_settings_round_trip_and_reject_bad_values() -> None:
    settings = ProxySettings(epochs=2, lr=1e-3)
    assert ProxySettings.from_dict(settings.to_dict()) == settings
    assert ProxySettings.from_dict({"epochs": 2.0, "lr": 1}).lr == 1.0
    with pytest.raises(UserError, match="unknown proxy setting.*colour"):
        ProxySettings.from_dict({"colour": "blue"})
    with pytest.raises(UserError, match="must be an integer"):
        ProxySettings.from_dict({"epochs": "four"})
    with pytest.raises(UserError, match="resolution is 32.*stage 4"):
        ProxySettings(resolution=32).validate()
    with pytest.raises(UserError, match="batch_size"):
        ProxySettings(batch_size=100, train_samples=50).validate()


def test_cli_flags_override_the_base_settings() -> None:
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser)
    base = ProxySettings(epochs=7)
    args = parser.parse_args(["--width", "0.5", "--train-samples", "3000", "--lr", "1e-3"])
    settings = settings_from_args(args, base)
    assert (settings.width, settings.train_samples, settings.lr) == (0.5, 3000, 1e-3)
    assert settings.epochs == 7 and settings.resolution == base.resolution
    with pytest.raises(UserError, match="epochs"):
        settings_from_args(parser.parse_args(["--epochs", "0"]))
