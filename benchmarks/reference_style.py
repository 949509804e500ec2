"""An eager iFormer written the way the reference release writes it: the speed baseline.

Same function and the same parameter names as ``iformer.InceptionTransformer`` (so it loads
that model's state dict), but with the reference's data movement: every block permutes its
(B, H, W, C) tokens to NCHW, slices the high and low channel groups into ``.contiguous()``
copies, runs every 1x1 projection as an NCHW convolution, writes attention out as two
matmuls, upsamples with ``nn.Upsample(scale_factor)`` and permutes back with another copy.
Only the reference's own ramps are supported (1 <= attention_heads <= num_heads - 1) and
only token grids divisible by the pool size, as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from iformer import BlockSpec, IFormerConfig


class HighMixer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.cnn_in = dim // 2
        self.pool_in = dim - self.cnn_in
        cnn_dim, pool_dim = 2 * self.cnn_in, 2 * self.pool_in
        self.conv1 = nn.Conv2d(self.cnn_in, cnn_dim, kernel_size=1, bias=False)
        self.proj1 = nn.Conv2d(cnn_dim, cnn_dim, kernel_size=3, padding=1, bias=False,
                               groups=cnn_dim)
        self.mid_gelu1 = nn.GELU()
        self.Maxpool = nn.MaxPool2d(3, stride=1, padding=1)
        self.proj2 = nn.Conv2d(self.pool_in, pool_dim, kernel_size=1)
        self.mid_gelu2 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        cx = x[:, :self.cnn_in].contiguous()
        cx = self.mid_gelu1(self.proj1(self.conv1(cx)))
        px = x[:, self.cnn_in:].contiguous()
        px = self.mid_gelu2(self.proj2(self.Maxpool(px)))
        return torch.cat((cx, px), dim=1)


class LowMixer(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, pool_size: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.pool = nn.AvgPool2d(pool_size, stride=pool_size) if pool_size > 1 else nn.Identity()
        self.uppool = nn.Upsample(scale_factor=pool_size) if pool_size > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        batch = x.shape[0]
        xa = self.pool(x)
        grid_h, grid_w = xa.shape[2:]
        xa = xa.permute(0, 2, 3, 1).reshape(batch, -1, self.dim)
        tokens, channels = xa.shape[1], xa.shape[2]
        qkv = self.qkv(xa).reshape(batch, tokens, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        xa = (attn @ v).transpose(2, 3).reshape(batch, channels, tokens)
        return self.uppool(xa.view(batch, channels, grid_h, grid_w))


class Mixer(nn.Module):
    def __init__(self, spec: BlockSpec, qkv_bias: bool) -> None:
        super().__init__()
        if not 0 < spec.attention_heads < spec.num_heads:
            raise ValueError("the reference-style baseline needs 1 <= attention_heads < num_heads")
        self.high_dim, self.low_dim = spec.high_dim, spec.low_dim
        self.high_mixer = HighMixer(self.high_dim)
        self.low_mixer = LowMixer(self.low_dim, spec.attention_heads, qkv_bias, spec.pool_size)
        fused = 2 * self.high_dim + self.low_dim
        self.conv_fuse = nn.Conv2d(fused, fused, kernel_size=3, padding=1, bias=False,
                                   groups=fused)
        self.proj = nn.Conv2d(fused, spec.dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        x = x.permute(0, 3, 1, 2)
        hx = self.high_mixer(x[:, :self.high_dim].contiguous())
        lx = self.low_mixer(x[:, self.high_dim:].contiguous())
        x = torch.cat((hx, lx), dim=1)
        x = self.proj(x + self.conv_fuse(x))
        return x.permute(0, 2, 3, 1).contiguous()


class Block(nn.Module):
    def __init__(self, spec: BlockSpec, config: IFormerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(spec.dim, eps=1e-6)
        self.attn = Mixer(spec, config.qkv_bias)
        self.norm2 = nn.LayerNorm(spec.dim, eps=1e-6)
        self.mlp = Mlp(spec.dim, int(spec.dim * config.mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(spec.drop_path) if spec.drop_path > 0 else nn.Identity()
        self.use_layer_scale = spec.layer_scale
        if spec.layer_scale:
            self.layer_scale_1 = nn.Parameter(torch.full((spec.dim,), config.layer_scale_init))
            self.layer_scale_2 = nn.Parameter(torch.full((spec.dim,), config.layer_scale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_layer_scale:
            x = x + self.drop_path(self.layer_scale_1 * self.attn(self.norm1(x)))
            return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class FirstPatchEmbed(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj1 = nn.Conv2d(in_chans, embed_dim // 2, kernel_size=3, stride=2, padding=1)
        self.norm1 = nn.BatchNorm2d(embed_dim // 2)
        self.gelu1 = nn.GELU()
        self.proj2 = nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=3, stride=2, padding=1)
        self.norm2 = nn.BatchNorm2d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm2(self.proj2(self.gelu1(self.norm1(self.proj1(x)))))
        return x.permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.proj(x.permute(0, 3, 1, 2)))
        return x.permute(0, 2, 3, 1)


class ReferenceStyleIFormer(nn.Module):
    def __init__(self, config: IFormerConfig) -> None:
        super().__init__()
        dims = config.embed_dims
        height, width = config.input_size
        specs = config.blocks()
        self.patch_embed = FirstPatchEmbed(config.in_chans, dims[0])
        for stage in range(1, 5):
            if stage > 1:
                setattr(self, f"patch_embed{stage}", PatchEmbed(dims[stage - 2], dims[stage - 1]))
            reduction = 2 ** (stage + 1)
            setattr(self, f"pos_embed{stage}", nn.Parameter(
                torch.zeros(1, height // reduction, width // reduction, dims[stage - 1])))
            setattr(self, f"blocks{stage}", nn.Sequential(
                *[Block(spec, config) for spec in specs if spec.stage == stage]))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], config.num_classes)

    def _get_pos_embed(self, pos_embed: torch.Tensor, height: int, width: int) -> torch.Tensor:
        if pos_embed.shape[1:3] == (height, width):
            return pos_embed
        resized = F.interpolate(pos_embed.permute(0, 3, 1, 2), size=(height, width),
                                mode="bilinear")
        return resized.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for stage in range(1, 5):
            if stage > 1:
                x = getattr(self, f"patch_embed{stage}")(x)
            height, width = x.shape[1:3]
            x = x + self._get_pos_embed(getattr(self, f"pos_embed{stage}"), height, width)
            x = getattr(self, f"blocks{stage}")(x)
        x = self.norm(x).flatten(1, 2).mean(1)
        return self.head(x)
