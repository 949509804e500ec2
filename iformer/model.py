"""Inception Transformer (iFormer, NeurIPS 2022) with a per-block frequency ramp.

The module tree and parameter names follow the reference release, so its ImageNet
checkpoints load with ``strict=True``. Inside a block, tokens stay channels-last
(B, H, W, C): 1x1 convolutions run as matmuls on that layout, depthwise convolutions and
pooling run on a channels-last NCHW view of the same memory, and attention goes through
``scaled_dot_product_attention`` where that is faster. :func:`set_fused_attn` (or
``TIMM_FUSED_ATTN=0`` before construction) writes attention out as matmuls, so tracing FLOP
counters can see it. A block may give all of its channels to one mixer (``attention_heads``
0 or ``num_heads``); the empty mixer then has no parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, trunc_normal_, use_fused_attn
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from .config import BlockSpec, IFormerConfig, preset
from .flops import stage_grids


def _conv1x1_channels_last(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution applied to (..., C) tokens as a matmul."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


def _nchw_view(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) tokens as an NCHW tensor in channels-last memory (no copy when dense)."""
    return x.permute(0, 3, 1, 2)


def _nhwc_view(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


class HighMixer(nn.Module):
    """High-frequency mixer: (1x1 conv -> depthwise 3x3) on one half, (max-pool -> 1x1 conv)
    on the other; each path doubles its channels and ends in GELU."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_in = dim // 2
        self.pool_in = dim - self.conv_in
        conv_dim, pool_dim = 2 * self.conv_in, 2 * self.pool_in
        self.conv1 = nn.Conv2d(self.conv_in, conv_dim, kernel_size=1, bias=False)
        self.proj1 = nn.Conv2d(conv_dim, conv_dim, kernel_size=3, padding=1, bias=False,
                               groups=conv_dim)
        self.mid_gelu1 = nn.GELU()
        self.Maxpool = nn.MaxPool2d(3, stride=1, padding=1)  # name kept for checkpoints
        self.proj2 = nn.Conv2d(self.pool_in, pool_dim, kernel_size=1)
        self.mid_gelu2 = nn.GELU()

    def forward(self, conv_x: torch.Tensor,
                pool_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two halves of C_h, (B, H, W, conv_in) and (B, H, W, pool_in)."""
        conv_path = _conv1x1_channels_last(conv_x, self.conv1)
        conv_path = self.mid_gelu1(_nhwc_view(self.proj1(_nchw_view(conv_path))))
        pool_path = _nhwc_view(self.Maxpool(_nchw_view(pool_x)))
        pool_path = self.mid_gelu2(_conv1x1_channels_last(pool_path, self.proj2))
        return conv_path, pool_path


# On CPU, the fused attention kernel has a fixed cost per image and head that only pays off
# once a head holds more than about this many values (tokens x head_dim); below it, as in
# the narrow proxies of a search, the written-out attention is faster.
CPU_FUSED_ATTN_MIN_SIZE = 1024


class LowMixer(nn.Module):
    """Low-frequency mixer: average-pool, multi-head self-attention, nearest upsample."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, pool_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.pool_size = pool_size
        self.fused_attn = use_fused_attn()
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        if self.pool_size > 1:
            # ceil_mode: on a grid the pool size does not divide, the last window is partial
            # (averaged over the tokens it covers), so every token reaches attention.
            x = _nhwc_view(F.avg_pool2d(_nchw_view(x), self.pool_size, self.pool_size,
                                        ceil_mode=True))
        grid_h, grid_w = x.shape[1], x.shape[2]
        tokens = grid_h * grid_w
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        # Unbinding dim 2 makes the backward stack q, k, v grads straight into qkv's layout.
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # each (B, heads, N, head_dim)
        if self.fused_attn and (x.device.type != "cpu"
                                or tokens * self.head_dim > CPU_FUSED_ATTN_MIN_SIZE):
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
            x = attn.softmax(dim=-1) @ v
        # Channel order is head-major (head * head_dim + d), as in the reference.
        x = x.transpose(1, 2).reshape(batch, grid_h, grid_w, self.num_heads * self.head_dim)
        if self.pool_size > 1:
            # Nearest upsampling by the pool size gives every token the output of the window
            # it was pooled in; the crop removes what a partial last window adds.
            x = _nhwc_view(F.interpolate(_nchw_view(x), scale_factor=self.pool_size,
                                         mode="nearest"))
            x = x[:, :height, :width]
        return x


class Mixer(nn.Module):
    """Inception token mixer: channels [0:C_h] go to the high-frequency mixer, [C_h:C] to
    attention; the outputs are concatenated, refined by a residual depthwise 3x3 and
    projected back to C."""

    def __init__(self, spec: BlockSpec, qkv_bias: bool) -> None:
        super().__init__()
        self.high_dim, self.low_dim = spec.high_dim, spec.low_dim
        # Channel groups in order: conv half of C_h, pool half of C_h, C_l (empty ones left out).
        self.split_sizes: list[int] = []
        if self.high_dim:
            self.high_mixer = HighMixer(self.high_dim)
            self.split_sizes += [self.high_mixer.conv_in, self.high_mixer.pool_in]
        if self.low_dim:
            self.low_mixer = LowMixer(self.low_dim, spec.attention_heads, qkv_bias,
                                      spec.pool_size)
            self.split_sizes.append(self.low_dim)
        fused = 2 * self.high_dim + self.low_dim
        self.conv_fuse = nn.Conv2d(fused, fused, kernel_size=3, padding=1, bias=False,
                                   groups=fused)
        self.proj = nn.Conv2d(fused, spec.dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One split (its backward is one concatenation) rather than overlapping slices.
        groups = x.split(self.split_sizes, dim=-1)
        parts: list[torch.Tensor] = []
        if self.high_dim:
            parts.extend(self.high_mixer(groups[0], groups[1]))
        if self.low_dim:
            parts.append(self.low_mixer(groups[-1]))
        y = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0].contiguous()
        # y + conv_fuse(y) is one depthwise convolution whose kernel has 1 added at its
        # centre: one pass over y instead of two, forward and backward.
        weight = self.conv_fuse.weight
        centre = F.pad(weight.new_ones(weight.shape[0], 1, 1, 1), (1, 1, 1, 1))
        y = F.conv2d(_nchw_view(y), weight + centre, padding=1, groups=weight.shape[0])
        return _conv1x1_channels_last(_nhwc_view(y), self.proj)


class Block(nn.Module):
    def __init__(self, spec: BlockSpec, config: IFormerConfig) -> None:
        super().__init__()
        dim = spec.dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Mixer(spec, config.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), act_layer=nn.GELU, drop=config.drop_rate)
        self.drop_path = DropPath(spec.drop_path) if spec.drop_path > 0 else nn.Identity()
        self.use_layer_scale = spec.layer_scale
        if spec.layer_scale:
            self.layer_scale_1 = nn.Parameter(torch.full((dim,), config.layer_scale_init))
            self.layer_scale_2 = nn.Parameter(torch.full((dim,), config.layer_scale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.attn(self.norm1(x))
        if self.use_layer_scale:
            mixed = self.layer_scale_1 * mixed
        x = x + self.drop_path(mixed)
        hidden = self.mlp(self.norm2(x))
        if self.use_layer_scale:
            hidden = self.layer_scale_2 * hidden
        return x + self.drop_path(hidden)


class FirstPatchEmbed(nn.Module):
    """Stem: conv3x3/s2 -> BN -> GELU -> conv3x3/s2 -> BN, output (B, H/4, W/4, C)."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj1 = nn.Conv2d(in_chans, embed_dim // 2, kernel_size=3, stride=2, padding=1)
        self.norm1 = nn.BatchNorm2d(embed_dim // 2)
        self.gelu1 = nn.GELU()
        self.proj2 = nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=3, stride=2, padding=1)
        self.norm2 = nn.BatchNorm2d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last images give channels-last feature maps, so the (B, H, W, C) tokens
        # below are dense; otherwise every layer norm and reshape of the stage copies them.
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.gelu1(self.norm1(self.proj1(x)))
        return _nhwc_view(self.norm2(self.proj2(x)))


class PatchEmbed(nn.Module):
    """Between stages: conv3x3/s2 -> BN on (B, H, W, C) tokens."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _nhwc_view(self.norm(self.proj(_nchw_view(x))))


class InceptionTransformer(nn.Module):
    """iFormer. Built from an :class:`IFormerConfig` or from its fields as keywords
    (which is how ``timm.create_model`` passes overrides)."""

    def __init__(self, config: IFormerConfig | None = None, **fields: Any) -> None:
        super().__init__()
        # A private copy: reset_classifier() updates it, the caller's config stays as it was.
        config = IFormerConfig(**{**(config.to_dict() if config else {}), **fields})
        self.config = config
        self.num_stages = 4  # fewer after prune_intermediate_layers()
        self.num_classes = config.num_classes
        dims = config.embed_dims
        self.num_features = self.head_hidden_size = dims[-1]
        self.grad_checkpointing = False

        self.patch_embed = FirstPatchEmbed(config.in_chans, dims[0])
        specs = config.blocks()
        grids = stage_grids(*config.input_size)
        self.feature_info = []
        for stage in range(1, 5):
            if stage > 1:
                setattr(self, f"patch_embed{stage}", PatchEmbed(dims[stage - 2], dims[stage - 1]))
            height, width = grids[stage - 1]
            setattr(self, f"pos_embed{stage}",
                    nn.Parameter(torch.zeros(1, height, width, dims[stage - 1])))
            blocks = [Block(spec, config) for spec in specs if spec.stage == stage]
            setattr(self, f"blocks{stage}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=dims[stage - 1], reduction=2 ** (stage + 1),
                                          module=f"blocks{stage}"))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = nn.Linear(dims[-1], config.num_classes) if config.num_classes else nn.Identity()
        self.apply(self._init_weights)
        for stage in range(1, 5):
            trunc_normal_(getattr(self, f"pos_embed{stage}"), std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # ---------------------------------------------------------------- timm model interface
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {f"pos_embed{stage}" for stage in range(1, self.num_stages + 1)}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^patch_embed\.|^pos_embed1",
            blocks=[(r"^(?:patch_embed|pos_embed)(\d+)", None),
                    (r"^blocks(\d+)\.(\d+)", None) if not coarse else (r"^blocks(\d+)", None),
                    (r"^norm", (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool not in (None, "", "avg"):
            raise ValueError(f"iFormer pools by the mean of its tokens; global_pool "
                             f"{global_pool!r} is not supported.")
        self.num_classes = num_classes
        self.config.num_classes = num_classes
        device = self.pos_embed1.device
        self.head = nn.Linear(self.num_features, num_classes, device=device) if num_classes \
            else nn.Identity()

    # -------------------------------------------------------------------------- forward
    def _pos_embed(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        pos = getattr(self, f"pos_embed{stage}")
        height, width = x.shape[1], x.shape[2]
        if pos.shape[1] != height or pos.shape[2] != width:
            pos = _nhwc_view(F.interpolate(_nchw_view(pos), size=(height, width),
                                           mode="bilinear", align_corners=False))
        return x + pos

    def _stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) if stage == 1 else getattr(self, f"patch_embed{stage}")(x)
        x = self._pos_embed(stage, x)
        blocks = getattr(self, f"blocks{stage}")
        if self.grad_checkpointing and not torch.jit.is_scripting():
            for block in blocks:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            return x
        return blocks(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) to final tokens (B, H/32, W/32, C), before the norm."""
        for stage in range(1, self.num_stages + 1):
            x = self._stage(stage, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.norm(x).mean(dim=(1, 2))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The four stage maps (NCHW) for dense-prediction heads, timm's interface."""
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be NCHW or NHWC, got {output_fmt!r}.")
        take_indices, max_index = feature_take_indices(4, indices)
        last = max_index if (stop_early or intermediates_only) else self.num_stages - 1
        intermediates = []
        for stage in range(1, last + 2):
            x = self._stage(stage, x)
            if stage - 1 in take_indices:
                feature = x
                if norm and stage == 4:
                    feature = self.norm(feature)
                intermediates.append(_nchw_view(feature).contiguous() if output_fmt == "NCHW"
                                     else feature)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> list[int]:
        """Drop the stages after the last one ``indices`` takes (and the norm and head)."""
        take_indices, max_index = feature_take_indices(4, indices)
        for stage in range(max_index + 2, self.num_stages + 1):
            for name in (f"patch_embed{stage}", f"pos_embed{stage}", f"blocks{stage}"):
                delattr(self, name)
        self.num_stages = min(self.num_stages, max_index + 1)
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take_indices


# ------------------------------------------------------------------------ timm registration
def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor],
                         model: InceptionTransformer) -> dict[str, torch.Tensor]:
    """Unwrap a released checkpoint and resize its position embeddings to the model's grid."""
    for key in ("model", "state_dict", "model_ema"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
            break
    # Prefixes of DistributedDataParallel and torch.compile wrappers.
    state_dict = {k.removeprefix("module.").removeprefix("_orig_mod."): v
                  for k, v in state_dict.items()}
    own = model.state_dict()
    for stage in range(1, 5):
        key = f"pos_embed{stage}"
        if key in state_dict and key in own and state_dict[key].shape != own[key].shape:
            height, width = own[key].shape[1:3]
            state_dict[key] = _nhwc_view(F.interpolate(
                _nchw_view(state_dict[key].float()), size=(height, width), mode="bilinear",
                align_corners=False)).contiguous()
    return state_dict


def _cfg(url: str = "", **kwargs: Any) -> dict[str, Any]:
    return {
        "url": url,
        "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.9, "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj1", "classifier": "head",
        "license": "apache-2.0", "paper_ids": "arXiv:2205.12956",
        "paper_name": "Inception Transformer",
        **kwargs,
    }


_RELEASE = "https://huggingface.co/sail/dl2/resolve/main/iformer/"

default_cfgs = generate_default_cfgs({
    "iformer_small.sail_in1k": _cfg(_RELEASE + "iformer_small.pth"),
    "iformer_base.sail_in1k": _cfg(_RELEASE + "iformer_base.pth"),
    "iformer_large.sail_in1k": _cfg(_RELEASE + "iformer_large.pth"),
    "iformer_small_384.sail_in1k": _cfg(_RELEASE + "iformer_small_384.pth",
                                        input_size=(3, 384, 384), pool_size=(12, 12),
                                        crop_pct=1.0),
    "iformer_base_384.sail_in1k": _cfg(_RELEASE + "iformer_base_384.pth",
                                       input_size=(3, 384, 384), pool_size=(12, 12),
                                       crop_pct=1.0),
    "iformer_large_384.sail_in1k": _cfg(_RELEASE + "iformer_large_384.pth",
                                        input_size=(3, 384, 384), pool_size=(12, 12),
                                        crop_pct=1.0),
})


_CONFIG_FIELDS = frozenset(IFormerConfig.__dataclass_fields__)


def _create_iformer(variant: str, pretrained: bool = False, **kwargs: Any) -> InceptionTransformer:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    config = kwargs.pop("config", None) or preset(variant)
    overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in _CONFIG_FIELDS}
    config = IFormerConfig(**{**config.to_dict(), **overrides})
    return build_model_with_cfg(
        InceptionTransformer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", out_indices=out_indices),
        config=config,
        # Passed explicitly: timm would otherwise fill them in from the pretrained cfg.
        num_classes=config.num_classes, in_chans=config.in_chans,
        **kwargs,
    )


@register_model
def iformer_small(pretrained: bool = False, **kwargs: Any) -> InceptionTransformer:
    return _create_iformer("iformer_small", pretrained, **kwargs)


@register_model
def iformer_base(pretrained: bool = False, **kwargs: Any) -> InceptionTransformer:
    return _create_iformer("iformer_base", pretrained, **kwargs)


@register_model
def iformer_large(pretrained: bool = False, **kwargs: Any) -> InceptionTransformer:
    return _create_iformer("iformer_large", pretrained, **kwargs)


@register_model
def iformer_small_384(pretrained: bool = False, **kwargs: Any) -> InceptionTransformer:
    return _create_iformer("iformer_small_384", pretrained, **kwargs)


@register_model
def iformer_base_384(pretrained: bool = False, **kwargs: Any) -> InceptionTransformer:
    return _create_iformer("iformer_base_384", pretrained, **kwargs)


@register_model
def iformer_large_384(pretrained: bool = False, **kwargs: Any) -> InceptionTransformer:
    return _create_iformer("iformer_large_384", pretrained, **kwargs)


def set_fused_attn(model: nn.Module, enabled: bool) -> nn.Module:
    """Attention through ``scaled_dot_product_attention`` (enabled) or written out as two
    matmuls and a softmax, which tracing FLOP counters such as fvcore can see."""
    for module in model.modules():
        if isinstance(module, LowMixer):
            module.fused_attn = enabled
    return model
