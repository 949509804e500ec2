"""Analytic FLOPs and parameters against fvcore tracing and parameter counting of our model."""

from __future__ import annotations

import random

import pytest
import torch
from fvcore.nn import FlopCountAnalysis

import iformer

# head_dim 8, 8, 16, 16: small enough to trace in well under a second.
TINY = dict(depths=[1, 1, 2, 1], embed_dims=[16, 32, 48, 64], num_heads=[2, 4, 3, 4],
            num_classes=10)


def random_ramp(config: iformer.IFormerConfig, rng: random.Random) -> list[int]:
    return [rng.randint(0, spec.num_heads) for spec in config.blocks()]


def fvcore_flops(config: iformer.IFormerConfig, height: int, width: int) -> int:
    """fvcore's count of our own model with attention written out as matmuls."""
    model = iformer.set_fused_attn(iformer.create_model(config), False).eval()
    analysis = FlopCountAnalysis(model, torch.randn(1, config.in_chans, height, width))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total()


# (img_size the model is built for, input height, input width). Odd grids under the 2x2
# pooled attention of stages 1-2 appear in all but the first; the last two differ from
# img_size, so position embeddings are resized.
SIZES = [
    (64, 64, 64),
    (72, 72, 72),          # stage grids 18, 9 (odd, pooled), 5, 3
    ([48, 80], 48, 80),    # non-square: 12x20, 6x10, 3x5, 2x3
    (64, 72, 100),         # non-square input unlike img_size: 18x25, 9x13, 5x7, 3x4
    ([40, 56], 56, 36),
]


@pytest.mark.parametrize(("case", "img_size", "height", "width"),
                         [(i, *size) for i, size in enumerate(SIZES)])
def test_analytic_flops_equal_fvcore_on_random_ramps(case: int, img_size, height: int,
                                                      width: int) -> None:
    rng = random.Random(case)
    base = iformer.IFormerConfig(**TINY, attention_heads=[1] * 5, img_size=img_size)
    # An extreme ramp (all pure conv or all pure attention blocks) and a random one.
    extreme = [0] * 5 if case % 2 else [spec.num_heads for spec in base.blocks()]
    ramps = [extreme, random_ramp(base, rng)]
    table = iformer.ramp_cost_table(base, (height, width))
    for ramp in ramps:
        config = base.with_ramp(ramp)
        expected = fvcore_flops(config, height, width)
        assert iformer.count_flops(config, (height, width)) == expected, ramp
        assert table.flops(ramp) == expected, ramp


def test_analytic_flops_equal_fvcore_with_mlp_ratio_and_pool_options() -> None:
    config = iformer.IFormerConfig(**TINY, attention_heads=[2, 1, 3, 0, 4], mlp_ratio=3.0,
                                   pool_sizes=[3, 2, 2, 1], qkv_bias=False, img_size=76)
    assert iformer.count_flops(config) == fvcore_flops(config, 76, 76)


def test_analytic_flops_and_params_with_odd_head_dims() -> None:
    # head_dim 3, 5, 7, 7: the high-frequency mixer gets odd channel counts, split unevenly.
    config = iformer.IFormerConfig(depths=[1, 1, 1, 1], embed_dims=[6, 10, 21, 28],
                                   num_heads=[2, 2, 3, 4], attention_heads=[1, 1, 1, 2],
                                   num_classes=5, img_size=64)
    assert iformer.count_flops(config) == fvcore_flops(config, 64, 64)
    model = iformer.create_model(config)
    assert iformer.count_params(config) == sum(p.numel() for p in model.parameters())


def test_flops_of_a_square_size_given_as_int_or_pair_agree() -> None:
    config = iformer.preset("small")
    assert iformer.count_flops(config, 224) == iformer.count_flops(config, (224, 224)) \
        == iformer.count_flops(config)
    assert iformer.count_flops(config, (224, 288)) > iformer.count_flops(config, 224)


@pytest.mark.parametrize("seed", range(4))
def test_count_params_equals_built_model(seed: int) -> None:
    rng = random.Random(seed)
    base = iformer.IFormerConfig(**{
        **TINY, "attention_heads": [1] * 5, "img_size": rng.choice([64, 96, [64, 96]]),
        "qkv_bias": bool(seed % 2), "num_classes": [10, 0][seed % 2],
        "layer_scale_stages": [[3, 4], [1, 2, 3, 4], []][seed % 3]})
    for ramp in ([0] * 5, [spec.num_heads for spec in base.blocks()],
                 random_ramp(base, rng)):
        config = base.with_ramp(ramp)
        model = iformer.create_model(config)
        assert iformer.count_params(config) == sum(p.numel() for p in model.parameters())


def test_ramp_cost_table_prices_every_ramp_and_bounds_them() -> None:
    config = iformer.preset("small")
    table = iformer.ramp_cost_table(config)
    rng = random.Random(0)
    assert len(table.per_block) == sum(config.depths)
    for spec, costs in zip(config.blocks(), table.per_block):
        assert len(costs) == spec.num_heads + 1
    for _ in range(20):
        ramp = random_ramp(config, rng)
        flops = iformer.count_flops(config.with_ramp(ramp))
        assert table.flops(ramp) == flops
        assert table.min_flops() <= flops <= table.max_flops()
    cheapest = [min(range(len(c)), key=c.__getitem__) for c in table.per_block]
    dearest = [max(range(len(c)), key=c.__getitem__) for c in table.per_block]
    assert table.min_flops() == iformer.count_flops(config.with_ramp(cheapest))
    assert table.max_flops() == iformer.count_flops(config.with_ramp(dearest))


def test_breakdown_adds_up_to_the_total() -> None:
    config = iformer.preset("base")
    breakdown = iformer.flops_breakdown(config, 256)
    assert breakdown.total == iformer.count_flops(config, 256)
    assert len(breakdown.blocks) == sum(config.depths)
    assert breakdown.pos_embed > 0  # 256 px differs from the 224 px embeddings
    assert iformer.flops_breakdown(config).pos_embed == 0
