"""Analytic FLOPs and parameter counts of an iFormer, by formula.

Convention (the one of the paper and of fvcore): one fused multiply-add is one flop.
Counted: convolutions and linear layers (weights only, not biases), the two attention
matmuls, layer norm (5 per element), eval batch norm (2 per element), nearest upsampling
(1 per output element) and bilinear resizing of position embeddings (4 per output element)
when the input size differs from ``img_size``. Not counted: GELU, softmax, max/avg pooling,
additions and layer-scale multiplications.

FLOPs add up over blocks, and a block's cost depends on the ramp only through its own
``attention_heads``, so :func:`ramp_cost_table` lets a search price any ramp with one sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .config import BlockSpec, IFormerConfig

ImgSize = int | Sequence[int] | None


def _hw(config: IFormerConfig, img_size: ImgSize) -> tuple[int, int]:
    if img_size is None:
        return config.input_size
    if isinstance(img_size, int):
        return img_size, img_size
    height, width = img_size
    return int(height), int(width)


def _half(n: int) -> int:
    """Output size of a 3x3, stride-2, padding-1 convolution."""
    return (n - 1) // 2 + 1


def stage_grids(height: int, width: int) -> list[tuple[int, int]]:
    """Token grid (H, W) of each stage for an input of height x width."""
    h, w = _half(_half(height)), _half(_half(width))
    grids = [(h, w)]
    for _ in range(3):
        h, w = _half(h), _half(w)
        grids.append((h, w))
    return grids


# ---------------------------------------------------------------------------- one block
def mixer_flops(dim: int, head_dim: int, attention_heads: int, pool_size: int,
                height: int, width: int) -> int:
    tokens = height * width
    low = attention_heads * head_dim
    high = dim - low
    flops = 0
    if high:
        conv_in, pool_in = high // 2, high - high // 2
        flops += tokens * conv_in * 2 * conv_in          # 1x1 conv, doubling
        flops += tokens * 2 * conv_in * 9                # depthwise 3x3
        flops += tokens * pool_in * 2 * pool_in          # 1x1 conv after max-pool
    if low:
        # Pooling uses ceil mode (a partial last window), upsampling scales by the pool size.
        pooled_h, pooled_w = -(-height // pool_size), -(-width // pool_size)
        pooled = pooled_h * pooled_w
        flops += pooled * low * 3 * low                  # qkv
        flops += 2 * pooled * pooled * low               # q @ k^T and attn @ v, all heads
        if pool_size > 1:
            flops += pooled * pool_size ** 2 * low       # nearest upsampling, before the crop
    fused = 2 * high + low
    flops += tokens * fused * 9                          # depthwise 3x3 of the fuse
    flops += tokens * fused * dim                        # 1x1 projection to C
    return flops


def block_flops(spec: BlockSpec, mlp_ratio: float, height: int, width: int,
                attention_heads: int | None = None) -> int:
    """One block on an H x W grid; ``attention_heads`` overrides the spec's own."""
    heads = spec.attention_heads if attention_heads is None else attention_heads
    tokens = height * width
    hidden = int(spec.dim * mlp_ratio)
    return (
        2 * 5 * tokens * spec.dim                        # two layer norms
        + mixer_flops(spec.dim, spec.head_dim, heads, spec.pool_size, height, width)
        + 2 * tokens * spec.dim * hidden                 # MLP
    )


def mixer_params(dim: int, head_dim: int, attention_heads: int, qkv_bias: bool) -> int:
    low = attention_heads * head_dim
    high = dim - low
    params = 0
    if high:
        conv_in, pool_in = high // 2, high - high // 2
        params += conv_in * 2 * conv_in + 2 * conv_in * 9
        params += pool_in * 2 * pool_in + 2 * pool_in
    if low:
        params += low * 3 * low + (3 * low if qkv_bias else 0)
    fused = 2 * high + low
    params += fused * 9 + fused * dim + dim
    return params


def block_params(spec: BlockSpec, mlp_ratio: float, qkv_bias: bool) -> int:
    hidden = int(spec.dim * mlp_ratio)
    return (
        2 * 2 * spec.dim                                 # two layer norms
        + (2 * spec.dim if spec.layer_scale else 0)
        + mixer_params(spec.dim, spec.head_dim, spec.attention_heads, qkv_bias)
        + spec.dim * hidden + hidden + hidden * spec.dim + spec.dim
    )


# ------------------------------------------------------------------------- whole network
@dataclass(frozen=True)
class FlopsBreakdown:
    stem: int
    transitions: int
    pos_embed: int
    blocks: tuple[int, ...]
    head: int

    @property
    def total(self) -> int:
        return self.stem + self.transitions + self.pos_embed + sum(self.blocks) + self.head


@dataclass(frozen=True)
class RampCostTable:
    """Price list for ramps: FLOPs = fixed + sum(per_block[b][attention_heads[b]])."""

    fixed: int
    per_block: tuple[tuple[int, ...], ...]

    def flops(self, attention_heads: Sequence[int]) -> int:
        per_block = self.per_block
        return self.fixed + sum(per_block[b][a] for b, a in enumerate(attention_heads))

    def min_flops(self) -> int:
        return self.fixed + sum(min(costs) for costs in self.per_block)

    def max_flops(self) -> int:
        return self.fixed + sum(max(costs) for costs in self.per_block)


def flops_breakdown(config: IFormerConfig, img_size: ImgSize = None) -> FlopsBreakdown:
    height, width = _hw(config, img_size)
    grids = stage_grids(height, width)
    native = stage_grids(*config.input_size)
    dims = config.embed_dims
    stem_hw = _half(height) * _half(width)
    half = dims[0] // 2
    stem = stem_hw * half * config.in_chans * 9 + 2 * stem_hw * half
    stem += grids[0][0] * grids[0][1] * (dims[0] * half * 9 + 2 * dims[0])
    transitions = sum(
        grids[s][0] * grids[s][1] * (dims[s] * dims[s - 1] * 9 + 2 * dims[s]) for s in range(1, 4)
    )
    # Position embeddings are resized bilinearly only when the token grid differs.
    pos_embed = sum(4 * h * w * dims[s] for s, (h, w) in enumerate(grids) if (h, w) != native[s])
    blocks = tuple(
        block_flops(spec, config.mlp_ratio, *grids[spec.stage - 1])
        for spec in config.blocks()
    )
    h4, w4 = grids[3]
    head = 5 * h4 * w4 * dims[3] + dims[3] * config.num_classes
    return FlopsBreakdown(stem, transitions, pos_embed, blocks, head)


def count_flops(config: IFormerConfig, img_size: ImgSize = None) -> int:
    """FLOPs of one image of ``img_size`` (int, (height, width), or the config's own)."""
    return flops_breakdown(config, img_size).total


def ramp_cost_table(config: IFormerConfig, img_size: ImgSize = None) -> RampCostTable:
    """The fixed cost and, for every block, its cost for each possible attention-head count."""
    height, width = _hw(config, img_size)
    grids = stage_grids(height, width)
    breakdown = flops_breakdown(config, img_size)
    per_block = tuple(
        tuple(block_flops(spec, config.mlp_ratio, *grids[spec.stage - 1], a)
              for a in range(spec.num_heads + 1))
        for spec in config.blocks()
    )
    return RampCostTable(breakdown.total - sum(breakdown.blocks), per_block)


def count_params(config: IFormerConfig) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    dims = config.embed_dims
    half = dims[0] // 2
    params = (config.in_chans * half * 9 + half) + 2 * half      # stem conv 1 + BN
    params += (half * dims[0] * 9 + dims[0]) + 2 * dims[0]       # stem conv 2 + BN
    params += sum(dims[s - 1] * dims[s] * 9 + dims[s] + 2 * dims[s] for s in range(1, 4))
    params += sum(h * w * c for (h, w), c in zip(stage_grids(*config.input_size), dims))
    params += sum(block_params(spec, config.mlp_ratio, config.qkv_bias) for spec in config.blocks())
    params += 2 * dims[3]
    if config.num_classes:
        params += dims[3] * config.num_classes + config.num_classes
    return params
