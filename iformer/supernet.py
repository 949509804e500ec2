"""A weight-sharing iFormer supernet: one network that holds every frequency ramp.

Every block holds the weights of every split it can take, 0 to ``num_heads`` attention heads
(0: a pure conv block, ``num_heads``: pure attention, the empty branch skipped).
:meth:`IFormerSupernet.set_ramp` selects a subnet; the subnet gathers its weights from the
shared ones and then computes exactly what the stand-alone :class:`InceptionTransformer` of
that ramp computes with those weights, at about its cost (the active channels are sliced,
not masked). :meth:`~IFormerSupernet.extract_subnet_state_dict` gives that stand-alone
model's state dict, :meth:`~IFormerSupernet.load_standalone_state_dict` goes the other way.
Everything outside the mixers (stem, norms, MLPs, layer scales, head) has the shape of the
stand-alone model and the same names.

Slot layout of one block's mixer, for C channels in n heads of ``head_dim`` d and a split
with ``a`` attention heads (C_h = (n - a) d high channels, conv_in = C_h // 2,
pool_in = C_h - conv_in), following the stand-alone block, which sends input channels
[0:conv_in] to the conv path, [conv_in:C_h] to the max-pool path and [C_h:C] to attention:

- Inputs are tied to channel positions. ``conv1`` has a column for every channel the conv
  path can read ([0:C//2]), ``proj2`` one for every channel the max-pool path can read
  ([d//2:C]), ``qkv`` one for every channel. A weight always meets the same input channel.
- Attention head g (0..n-1) sits on channels [g d:(g+1) d] and owns q/k/v rows
  ``qkv.weight.view(3, n, d, C)[:, g]``; a split uses the last a heads, g >= n - a, because
  the stand-alone block gives attention the last channels.
- The concatenation that ``conv_fuse`` and ``proj`` read has 3C fixed slots: conv outputs
  [0:2 (C//2)], max-pool outputs [2 (C//2):2C], head g's output [2C + g d:2C + (g+1) d]. The
  conv path's 2 conv_in outputs use the first 2 conv_in conv slots (rows of ``conv1``, channels
  of ``proj1``), the max-pool path's 2 pool_in outputs the first 2 pool_in max-pool slots
  (rows and biases of ``proj2``). So each output slot has one producer and one consumer
  whatever the split; a subnet reads its slots in the stand-alone order conv | pool | attention.

Where the tying cannot be exact: the outputs of the two 1x1 convolutions mix all their inputs,
so they have no channel position of their own; a slot keeps its producer row and consumer
column, but the set of channels that row reads grows and shrinks with C_h. And the boundary
between the conv and max-pool halves moves by d/2 channels per head (the attention boundary
by d): those channels change role, each role with its own weights (a ``conv1`` column or a
``proj2`` column), as a channel at the attention boundary swaps between a ``proj2`` column
and the ``qkv`` columns.

Training note: a split leaves the other slots out of the graph; their gradient is zero (or
None where a whole branch is off), yet an optimizer with momentum or weight decay still
moves them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import BlockSpec, IFormerConfig
from .model import CPU_FUSED_ATTN_MIN_SIZE, InceptionTransformer, LowMixer


@dataclass(frozen=True)
class SlotSelection:
    """Where one parameter of a stand-alone block lives in the supernet: views of supernet
    parameters, concatenated along ``dim`` and reshaped to the stand-alone ``shape``."""

    views: tuple[torch.Tensor, ...]
    dim: int
    shape: tuple[int, ...]

    @classmethod
    def of(cls, view: torch.Tensor, shape: Sequence[int] | None = None) -> SlotSelection:
        return cls((view,), 0, tuple(view.shape if shape is None else shape))

    def gather(self) -> torch.Tensor:
        """The stand-alone parameter (a view where the slots allow one); gradients flow back
        into the supernet's slots."""
        joined = self.views[0] if len(self.views) == 1 else torch.cat(self.views, self.dim)
        return joined.reshape(self.shape)

    def scatter(self, value: torch.Tensor) -> None:
        """Write a stand-alone parameter into the slots (call under ``torch.no_grad``)."""
        joined_shape = list(self.views[0].shape)
        sizes = [view.shape[self.dim] for view in self.views]
        joined_shape[self.dim] = sum(sizes)
        for view, part in zip(self.views, value.reshape(joined_shape).split(sizes, self.dim)):
            view.copy_(part)


def _nchw_view(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc_view(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


class SupernetHighMixer(nn.Module):
    """The high-frequency mixer at every split: 1x1 conv -> depthwise 3x3 -> GELU on the
    conv half of C_h, max-pool -> 1x1 conv -> GELU on the other half, each path doubling its
    channels. Parameter names follow the stand-alone ``HighMixer``."""

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.conv_slots = dim // 2  # conv_in at a = 0, the largest
        self.pool_slots = dim - self.conv_slots
        # The lowest channel any split sends to max-pool: conv_in = d // 2 at a = n - 1.
        self.pool_first = head_dim // 2
        conv_out = 2 * self.conv_slots
        self.conv1 = nn.Conv2d(self.conv_slots, conv_out, kernel_size=1, bias=False)
        self.proj1 = nn.Conv2d(conv_out, conv_out, kernel_size=3, padding=1, bias=False,
                               groups=conv_out)
        self.proj2 = nn.Conv2d(dim - self.pool_first, 2 * self.pool_slots, kernel_size=1)

    def selections(self, high_dim: int) -> dict[str, SlotSelection]:
        """The stand-alone ``HighMixer(high_dim)`` parameters, by name."""
        conv_in = high_dim // 2
        pool_in = high_dim - conv_in
        first = conv_in - self.pool_first  # proj2's column of input channel conv_in
        return {
            "conv1.weight": SlotSelection.of(self.conv1.weight[:2 * conv_in, :conv_in]),
            "proj1.weight": SlotSelection.of(self.proj1.weight[:2 * conv_in]),
            "proj2.weight": SlotSelection.of(
                self.proj2.weight[:2 * pool_in, first:first + pool_in]),
            "proj2.bias": SlotSelection.of(self.proj2.bias[:2 * pool_in]),
        }

    def forward(self, conv_x: torch.Tensor,
                pool_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two halves of C_h, (B, H, W, conv_in) and (B, H, W, pool_in), as in the
        stand-alone block; their widths select the split."""
        conv_in = conv_x.shape[-1]
        weights = {name: slots.gather()
                   for name, slots in self.selections(conv_in + pool_x.shape[-1]).items()}
        conv_path = F.linear(conv_x, weights["conv1.weight"].flatten(1))
        conv_path = F.conv2d(_nchw_view(conv_path), weights["proj1.weight"], padding=1,
                             groups=2 * conv_in)
        conv_path = F.gelu(_nhwc_view(conv_path))
        pool_path = _nhwc_view(F.max_pool2d(_nchw_view(pool_x), 3, stride=1, padding=1))
        pool_path = F.gelu(F.linear(pool_path, weights["proj2.weight"].flatten(1),
                                   weights["proj2.bias"]))
        return conv_path, pool_path


class SupernetLowMixer(LowMixer):
    """Pooled multi-head attention whose ``qkv`` holds the q/k/v rows of all ``num_heads``
    heads over all channels. Its input is the attention channels of a split, the last
    ``heads * head_dim`` of the block; their width selects the heads. A ``LowMixer``, so
    :func:`iformer.set_fused_attn` reaches it."""

    def selections(self, heads: int) -> dict[str, SlotSelection]:
        """The stand-alone ``LowMixer`` parameters of a split with ``heads`` heads."""
        n, d = self.num_heads, self.head_dim
        dim = n * d
        first = (n - heads) * d
        low_dim = heads * d
        # Stand-alone qkv rows are ordered (q/k/v, head, d), as the view below.
        weight = self.qkv.weight.view(3, n, d, dim)[:, n - heads:, :, first:]
        chosen = {"qkv.weight": SlotSelection.of(weight, (3 * low_dim, low_dim))}
        if self.qkv.bias is not None:
            bias = self.qkv.bias.view(3, n, d)[:, n - heads:]
            chosen["qkv.bias"] = SlotSelection.of(bias, (3 * low_dim,))
        return chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, low_dim = x.shape
        heads, d = low_dim // self.head_dim, self.head_dim
        weights = {name: slots.gather() for name, slots in self.selections(heads).items()}
        if self.pool_size > 1:
            # ceil_mode: a partial last window still reaches attention, as in the model.
            x = _nhwc_view(F.avg_pool2d(_nchw_view(x), self.pool_size, self.pool_size,
                                        ceil_mode=True))
        grid_h, grid_w = x.shape[1], x.shape[2]
        tokens = grid_h * grid_w
        qkv = F.linear(x, weights["qkv.weight"], weights.get("qkv.bias"))
        q, k, v = (t.transpose(1, 2)
                   for t in qkv.reshape(batch, tokens, 3, heads, d).unbind(2))
        # The stand-alone model's choice of kernel, so both round the same way.
        if self.fused_attn and (x.device.type != "cpu" or tokens * d > CPU_FUSED_ATTN_MIN_SIZE):
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            x = ((q * d ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1) @ v
        x = x.transpose(1, 2).reshape(batch, grid_h, grid_w, low_dim)
        if self.pool_size > 1:
            x = _nhwc_view(F.interpolate(_nchw_view(x), scale_factor=self.pool_size,
                                         mode="nearest"))[:, :height, :width]
        return x


class SupernetMixer(nn.Module):
    """The inception token mixer of one block at every split; ``attention_heads`` selects
    one. Fixed slots of the concatenation as in the module docstring."""

    def __init__(self, spec: BlockSpec, qkv_bias: bool) -> None:
        super().__init__()
        self.dim, self.num_heads, self.head_dim = spec.dim, spec.num_heads, spec.head_dim
        self.attention_heads = spec.attention_heads
        self.high_mixer = SupernetHighMixer(spec.dim, spec.head_dim)
        self.low_mixer = SupernetLowMixer(spec.dim, spec.num_heads, qkv_bias, spec.pool_size)
        slots = 3 * spec.dim  # conv outputs, max-pool outputs, attention outputs
        self.conv_fuse = nn.Conv2d(slots, slots, kernel_size=3, padding=1, bias=False,
                                   groups=slots)
        self.proj = nn.Conv2d(slots, spec.dim, kernel_size=1)

    def selections(self, heads: int) -> dict[str, SlotSelection]:
        """The stand-alone ``Mixer`` parameters of a split with ``heads`` attention heads,
        named as in its state dict and in its order."""
        chosen: dict[str, SlotSelection] = {}
        high_dim = (self.num_heads - heads) * self.head_dim
        if high_dim:
            for name, slots in self.high_mixer.selections(high_dim).items():
                chosen[f"high_mixer.{name}"] = slots
        if heads:
            for name, slots in self.low_mixer.selections(heads).items():
                chosen[f"low_mixer.{name}"] = slots
        chosen.update(self._fuse_selections(heads))
        return chosen

    def _fuse_selections(self, heads: int) -> dict[str, SlotSelection]:
        """``conv_fuse`` and ``proj`` of a split: the slots it uses, in the stand-alone order
        conv | max-pool | attention."""
        high_dim = (self.num_heads - heads) * self.head_dim
        conv_out, pool_out = 2 * (high_dim // 2), 2 * (high_dim - high_dim // 2)
        pool_start, attention_start = 2 * self.high_mixer.conv_slots, 2 * self.dim
        active = [slice(start, stop) for start, stop in (
            (0, conv_out), (pool_start, pool_start + pool_out),
            (attention_start + high_dim, 3 * self.dim)) if stop > start]
        fused = 2 * high_dim + heads * self.head_dim
        return {
            "conv_fuse.weight": SlotSelection(
                tuple(self.conv_fuse.weight[s] for s in active), 0, (fused, 1, 3, 3)),
            "proj.weight": SlotSelection(
                tuple(self.proj.weight[:, s] for s in active), 1, (self.dim, fused, 1, 1)),
            "proj.bias": SlotSelection.of(self.proj.bias),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = self.attention_heads
        high_dim = (self.num_heads - heads) * self.head_dim
        sizes = [size for size in (high_dim // 2, high_dim - high_dim // 2,
                                   heads * self.head_dim) if size]
        groups = x.split(sizes, dim=-1)
        parts: list[torch.Tensor] = []
        if high_dim:
            parts.extend(self.high_mixer(groups[0], groups[1]))
        if heads:
            parts.append(self.low_mixer(groups[-1]))
        y = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0].contiguous()
        fuse = {name: slots.gather() for name, slots in self._fuse_selections(heads).items()}
        fuse_weight = fuse["conv_fuse.weight"]
        # y + conv_fuse(y) as one depthwise convolution with 1 added at the kernel centre,
        # as the stand-alone block computes it.
        centre = F.pad(fuse_weight.new_ones(fuse_weight.shape[0], 1, 1, 1), (1, 1, 1, 1))
        y = F.conv2d(_nchw_view(y), fuse_weight + centre, padding=1, groups=fuse_weight.shape[0])
        return F.linear(_nhwc_view(y), fuse["proj.weight"].flatten(1), fuse["proj.bias"])


class IFormerSupernet(InceptionTransformer):
    """iFormer whose every block holds every split. ``config.attention_heads`` is the ramp
    of the selected subnet; :meth:`set_ramp` selects another. Stem, norms, MLPs and head
    are an ``InceptionTransformer``'s (and its timm interface, forward included)."""

    def __init__(self, config: IFormerConfig | None = None, **fields: Any) -> None:
        super().__init__(config, **fields)
        # The stand-alone mixers built above make way for ones that hold every split.
        for spec, (_, block) in zip(self.config.blocks(), self._named_blocks()):
            mixer = SupernetMixer(spec, self.config.qkv_bias)
            mixer.apply(self._init_weights)
            block.attn = mixer

    def _named_blocks(self) -> Iterator[tuple[str, nn.Module]]:
        for stage in range(1, self.num_stages + 1):
            for index, block in enumerate(getattr(self, f"blocks{stage}")):
                yield f"blocks{stage}.{index}", block

    # ---------------------------------------------------------------------- the ramp
    @property
    def ramp(self) -> list[int]:
        """``attention_heads`` per block of the selected subnet."""
        return list(self.config.attention_heads)

    def subnet_config(self, ramp: Sequence[int] | None = None) -> IFormerConfig:
        """The stand-alone config of a ramp (default: the selected one); a ramp that cannot
        be one raises :class:`iformer.ConfigError` saying which block and why."""
        return self.config.with_ramp(self.ramp if ramp is None else ramp)

    def set_ramp(self, ramp: Sequence[int]) -> IFormerSupernet:
        """Select the subnet of ``ramp`` (one attention-head count per block, 0 to its
        stage's ``num_heads``); an invalid ramp raises and leaves the selection as it was."""
        config = self.subnet_config(ramp)
        for heads, (_, block) in zip(config.attention_heads, self._named_blocks()):
            block.attn.attention_heads = heads
        self.config = config
        return self

    # ------------------------------------------------------- stand-alone weights, both ways
    def _subnet_entries(self, ramp: Sequence[int] | None
                        ) -> dict[str, torch.Tensor | SlotSelection]:
        """The stand-alone state dict of a ramp as shared tensors (outside the mixers) and
        slot selections (inside), in the stand-alone order."""
        heads = dict(zip((name for name, _ in self._named_blocks()),
                         self.subnet_config(ramp).attention_heads))
        entries: dict[str, torch.Tensor | SlotSelection] = {}
        for key, value in self.state_dict(keep_vars=True).items():
            parts = key.split(".")
            if len(parts) < 4 or parts[2] != "attn":
                entries[key] = value
                continue
            block_name = ".".join(parts[:2])
            prefix = f"{block_name}.attn."
            if prefix + "proj.bias" in entries:
                continue  # this mixer's entries are in already
            mixer = self.get_submodule(f"{block_name}.attn")
            for name, slots in mixer.selections(heads[block_name]).items():
                entries[prefix + name] = slots
        return entries

    @torch.no_grad()
    def extract_subnet_state_dict(self, ramp: Sequence[int] | None = None
                                  ) -> dict[str, torch.Tensor]:
        """A copy of the weights of ``ramp``'s subnet (default: the selected one) as the
        state dict of the stand-alone model with that ramp, which it loads with
        ``strict=True``."""
        return {key: (value.gather() if isinstance(value, SlotSelection) else value)
                .detach().clone() for key, value in self._subnet_entries(ramp).items()}

    def extract_subnet(self, ramp: Sequence[int] | None = None) -> InceptionTransformer:
        """The stand-alone model of ``ramp`` with the weights its subnet has here."""
        model = InceptionTransformer(self.subnet_config(ramp))
        model.load_state_dict(self.extract_subnet_state_dict(ramp), strict=True)
        return model.to(self.pos_embed1.device)

    @torch.no_grad()
    def load_standalone_state_dict(self, state_dict: Mapping[str, torch.Tensor],
                                   ramp: Sequence[int]) -> IFormerSupernet:
        """Inherit the weights of a stand-alone model with ``ramp`` (its state dict, all keys
        required) into the slots of that ramp, and select it. Other slots keep their values."""
        entries = self._subnet_entries(ramp)
        missing = [key for key in entries if key not in state_dict]
        unexpected = [key for key in state_dict if key not in entries]
        wrong = [f"{key} {tuple(state_dict[key].shape)} (expected {tuple(entries[key].shape)})"
                 for key in entries if key in state_dict
                 and tuple(state_dict[key].shape) != tuple(entries[key].shape)]
        if missing or unexpected or wrong:
            problems = [f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                        for label, keys in (("missing", missing), ("unexpected", unexpected),
                                            ("wrong shape", wrong)) if keys]
            raise ValueError(f"the state dict is not that of the stand-alone model of ramp "
                             f"{list(ramp)} at this supernet's widths; {'; '.join(problems)}.")
        for key, target in entries.items():
            if isinstance(target, SlotSelection):
                target.scatter(state_dict[key])
            else:
                target.copy_(state_dict[key])
        return self.set_ramp(ramp)
