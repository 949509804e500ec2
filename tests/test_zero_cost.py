"""Zero-cost scores on real proxy models and real (synthetic) images."""

from __future__ import annotations

import math

import pytest
import torch

import iformer
from rampsearch.data import load_proxy_data
from rampsearch.training.proxy import ProxySettings, cpu_threads, proxy_model_config
from rampsearch.training.zero_cost import (
    ZERO_COST_SCORES,
    naswot,
    score_batch,
    synflow,
    zero_cost_scores,
)

SMALL = iformer.preset("small")
SETTINGS = ProxySettings(width=0.125, train_samples=128, val_samples=32, batch_size=32)
REVERSE = [3 - a if i < 3 else a for i, a in enumerate(SMALL.attention_heads)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the scores are small, and a shared 2-core machine makes two threads
    wait on each other."""
    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def data():
    return load_proxy_data("synthetic", SETTINGS.resolution, SETTINGS.train_samples,
                           SETTINGS.val_samples)


@pytest.fixture(scope="module")
def paper_scores(data):
    return zero_cost_scores(SMALL, data, SETTINGS, seed=0)


def test_scores_are_finite_and_deterministic(data, paper_scores):
    assert set(paper_scores) == set(ZERO_COST_SCORES)
    assert all(math.isfinite(v) for v in paper_scores.values())
    assert paper_scores["synflow"] > 0 and paper_scores["grad_norm"] > 0
    assert zero_cost_scores(SMALL, data, SETTINGS, seed=0) == paper_scores


def test_scores_differ_between_ramps_and_seeds(data, paper_scores):
    other_ramp = zero_cost_scores(SMALL.with_ramp(REVERSE), data, SETTINGS, seed=0)
    other_seed = zero_cost_scores(SMALL, data, SETTINGS, seed=1)
    for name in ZERO_COST_SCORES:
        assert other_ramp[name] != paper_scores[name], name
        assert other_seed[name] != paper_scores[name], name


def test_synflow_leaves_the_model_as_it_was(data):
    model = iformer.create_model(proxy_model_config(SMALL, SETTINGS, data.num_classes))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    synflow(model, (3, SETTINGS.resolution, SETTINGS.resolution))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_naswot_kernel_sees_repeated_images(data):
    """Two copies of one image give two equal kernel rows: a singular kernel, log|det| of
    minus infinity; distinct images give a finite score."""
    model = iformer.create_model(proxy_model_config(SMALL, SETTINGS, data.num_classes))
    images, _ = score_batch(data, SETTINGS, seed=0, batch_size=8)
    assert math.isfinite(naswot(model, images))
    assert naswot(model, torch.cat([images[:1], images[:1], images[2:]])) == -math.inf
