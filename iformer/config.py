"""The iFormer architecture as data: one dataclass, three presets, a validator.

A config fully determines the network. The per-block ``attention_heads`` list is the
*frequency ramp*: block ``b`` gives ``attention_heads[b] * head_dim`` channels to the
low-frequency (attention) mixer and the rest to the high-frequency (conv / max-pool) mixer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NUM_STAGES = 4


class ConfigError(ValueError):
    """An IFormerConfig that cannot describe a network; the message says what to change."""


@dataclass(frozen=True)
class BlockSpec:
    """Everything one block needs to be built or costed, derived from the config."""

    index: int  # 0-based over the whole network
    stage: int  # 1-based, as in the paper
    dim: int
    num_heads: int
    attention_heads: int
    pool_size: int
    layer_scale: bool
    drop_path: float

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def low_dim(self) -> int:
        """C_l: channels given to the pooled-attention mixer."""
        return self.attention_heads * self.head_dim

    @property
    def high_dim(self) -> int:
        """C_h: channels given to the max-pool and depthwise-conv mixers."""
        return self.dim - self.low_dim

    @property
    def high_ratio(self) -> float:
        """C_h / C, the quantity the frequency ramp is about."""
        return self.high_dim / self.dim


@dataclass
class IFormerConfig:
    """Hyper-parameters of an Inception Transformer.

    Stages are numbered 1 to 4 as in the paper (``layer_scale_stages``, error messages);
    blocks are indexed from 0 over the whole network (``attention_heads[b]``).
    """

    depths: list[int]
    embed_dims: list[int]
    num_heads: list[int]
    attention_heads: list[int]
    pool_sizes: list[int] = field(default_factory=lambda: [2, 2, 1, 1])
    layer_scale_stages: list[int] = field(default_factory=lambda: [3, 4])
    layer_scale_init: float = 1e-6
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    drop_rate: float = 0.0
    img_size: int | list[int] = 224
    in_chans: int = 3
    num_classes: int = 1000

    def __post_init__(self) -> None:
        # Accept tuples from callers and YAML, store plain lists so equality and dumps are stable.
        for name in ("depths", "embed_dims", "num_heads", "attention_heads", "pool_sizes",
                     "layer_scale_stages"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ConfigError(f"{name} must be a list of integers, got {value!r}.")
            setattr(self, name, [_as_int(name, v) for v in value])
        if isinstance(self.img_size, Sequence) and not isinstance(self.img_size, str):
            self.img_size = [_as_int("img_size", v) for v in self.img_size]
        self.validate()

    # ----------------------------------------------------------------------------- checks
    def validate(self) -> None:
        for name in ("depths", "embed_dims", "num_heads", "pool_sizes"):
            values = getattr(self, name)
            if len(values) != NUM_STAGES:
                raise ConfigError(f"{name} has {len(values)} entries but iFormer has "
                                  f"{NUM_STAGES} stages; give one value per stage.")
        for stage, (d, c, n, p) in enumerate(zip(self.depths, self.embed_dims, self.num_heads,
                                                 self.pool_sizes), start=1):
            if d < 1:
                raise ConfigError(f"stage {stage} has depth {d}; every stage needs at least 1 block.")
            if n < 1:
                raise ConfigError(f"stage {stage} has {n} heads; num_heads must be at least 1.")
            if c < 1 or c % n:
                raise ConfigError(f"stage {stage} has embed_dim {c}, which is not a positive "
                                  f"multiple of its {n} heads; head_dim = embed_dim / num_heads "
                                  f"must be a whole number.")
            if p < 1:
                raise ConfigError(f"stage {stage} has pool size {p}; use 1 for no pooling.")
        if self.embed_dims[0] < 2:
            raise ConfigError("embed_dims[0] must be at least 2 (the stem halves it).")
        total = sum(self.depths)
        if len(self.attention_heads) != total:
            count = len(self.attention_heads)
            raise ConfigError(f"attention_heads has {count} entr{'y' if count == 1 else 'ies'} "
                              f"but depths sum to {total}; give one entry per block.")
        for block, stage in enumerate(self.block_stages()):
            a, n = self.attention_heads[block], self.num_heads[stage - 1]
            if not 0 <= a <= n:
                raise ConfigError(f"block {block} asks for {a} attention heads but stage "
                                  f"{stage} has {n} heads; use 0 to {n}.")
            if (n - a) * self.embed_dims[stage - 1] // n == 1:
                raise ConfigError(f"block {block} leaves 1 channel to the high-frequency mixer, "
                                  f"which splits its channels between two paths; use a head_dim "
                                  f"of at least 2 or {n} attention heads.")
        for stage in self.layer_scale_stages:
            if not 1 <= stage <= NUM_STAGES:
                raise ConfigError(f"layer_scale_stages names stage {stage}; stages are 1 to "
                                  f"{NUM_STAGES}.")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"mlp_ratio is {self.mlp_ratio}; it must be positive.")
        for name in ("drop_path_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} is {getattr(self, name)}; use a value in [0, 1).")
        height, width = self.input_size
        if height < 1 or width < 1:
            raise ConfigError(f"img_size {self.img_size} is not a positive size.")
        if self.in_chans < 1:
            raise ConfigError(f"in_chans is {self.in_chans}; it must be at least 1.")
        if self.num_classes < 0:
            raise ConfigError(f"num_classes is {self.num_classes}; use 0 for no classifier.")

    # ----------------------------------------------------------------------- derived views
    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the position embeddings are sized for."""
        if isinstance(self.img_size, list):
            if len(self.img_size) != 2:
                raise ConfigError(f"img_size {self.img_size} must be one int or [height, width].")
            return self.img_size[0], self.img_size[1]
        return self.img_size, self.img_size

    @property
    def head_dims(self) -> list[int]:
        return [c // n for c, n in zip(self.embed_dims, self.num_heads)]

    def block_stages(self) -> list[int]:
        """The 1-based stage of every block."""
        return [stage for stage, depth in enumerate(self.depths, start=1) for _ in range(depth)]

    def blocks(self) -> list[BlockSpec]:
        total = sum(self.depths)
        stages = self.block_stages()
        return [
            BlockSpec(
                index=b,
                stage=s,
                dim=self.embed_dims[s - 1],
                num_heads=self.num_heads[s - 1],
                attention_heads=self.attention_heads[b],
                pool_size=self.pool_sizes[s - 1],
                layer_scale=s in self.layer_scale_stages,
                # Linear drop-path schedule over depth, as torch.linspace(0, rate, total).
                drop_path=self.drop_path_rate * b / (total - 1) if total > 1 else 0.0,
            )
            for b, s in enumerate(stages)
        ]

    def high_ratios(self) -> list[float]:
        """C_h / C per block."""
        return [spec.high_ratio for spec in self.blocks()]

    # ------------------------------------------------------------------------ variations
    def with_ramp(self, attention_heads: Sequence[int]) -> IFormerConfig:
        return dataclasses.replace(self, attention_heads=list(attention_heads))

    def scaled(self, width: float) -> IFormerConfig:
        """A narrower (or wider) network with the same frequency ramp.

        head_dim shrinks by ``width`` (rounded, at least 1) while every stage keeps its
        head count and every block its attention-head count, so C_h/C is unchanged.
        """
        if not width > 0:
            raise ConfigError(f"width multiplier {width} must be positive.")
        head_dims = [max(1, round(h * width)) for h in self.head_dims]
        dims = [h * n for h, n in zip(head_dims, self.num_heads)]
        if dims[0] < 2:
            raise ConfigError(f"width {width} leaves stage 1 with {dims[0]} channel(s); use a "
                              f"larger width.")
        return dataclasses.replace(self, embed_dims=dims)

    # ---------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IFormerConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"an iFormer config must be a mapping of field names to values, "
                              f"got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; known keys are "
                              f"{', '.join(sorted(known))}.")
        missing = [k for k in ("depths", "embed_dims", "num_heads", "attention_heads")
                   if k not in data]
        if missing:
            raise ConfigError(f"config is missing {', '.join(missing)}.")
        try:
            return cls(**dict(data))
        except TypeError as exc:  # e.g. a number where a list belongs
            raise ConfigError(f"config has a value of the wrong type: {exc}.") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> IFormerConfig:
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_yaml(cls, text: str) -> IFormerConfig:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}") from None
        if isinstance(data, Mapping) and "model" in data and isinstance(data["model"], Mapping):
            data = data["model"]  # accept a file that nests the config under `model:`
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        text = self.to_json() if path.suffix == ".json" else self.to_yaml()
        path.write_text(text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> IFormerConfig:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read model config {path}: {exc.strerror}.") from None
        if path.suffix == ".json":
            try:
                return cls.from_json(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path} is not valid JSON: {exc}.") from None
        return cls.from_yaml(text)


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{name} must hold integers, got {value!r}.")
    return value


# ------------------------------------------------------------------------------- presets
def _ramp(*runs: tuple[int, int]) -> list[int]:
    return [heads for heads, count in runs for _ in range(count)]


_PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(
        depths=[3, 3, 9, 3], embed_dims=[96, 192, 320, 384], num_heads=[3, 6, 10, 12],
        attention_heads=_ramp((1, 3), (3, 3), (7, 4), (9, 5), (11, 3))),
    "base": dict(
        depths=[4, 6, 14, 6], embed_dims=[96, 192, 384, 512], num_heads=[3, 6, 12, 16],
        attention_heads=_ramp((1, 4), (3, 6), (8, 7), (10, 7), (15, 6))),
    "large": dict(
        depths=[4, 6, 18, 8], embed_dims=[96, 192, 448, 640], num_heads=[3, 6, 14, 20],
        attention_heads=_ramp((1, 4), (3, 6), (10, 9), (12, 9), (19, 8))),
}

PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)

# Drop-path rate of the paper's ImageNet recipe; presets default to 0 like timm's models.
PAPER_DROP_PATH: dict[str, float] = {"small": 0.2, "base": 0.4, "large": 0.5}

# The paper's ImageNet-1K top-1 at 224 px, for reports.
PAPER_TOP1: dict[str, float] = {"small": 83.4, "base": 84.6, "large": 84.8}


def preset_name(name: str) -> str:
    """'iformer_small', 'small' and 'iFormer-S' style names to the short preset name."""
    key = name.strip().lower().replace("-", "_")
    key = key.removeprefix("iformer_")
    key = {"s": "small", "b": "base", "l": "large"}.get(key, key)
    key = key.removesuffix("_384")
    if key not in _PRESETS:
        raise ConfigError(f"unknown iFormer preset {name!r}; choose one of "
                          f"{', '.join('iformer_' + n for n in PRESET_NAMES)}.")
    return key


def preset(name: str, **overrides: Any) -> IFormerConfig:
    """A fresh config of a paper preset, with any field overridden."""
    fields = dict(_PRESETS[preset_name(name)])
    if name.strip().lower().endswith("_384"):
        fields["img_size"] = 384
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(IFormerConfig)})
    if unknown:
        raise ConfigError(f"unknown iFormer option(s) {', '.join(unknown)}.")
    fields.update(overrides)
    return IFormerConfig(**fields)


def load_config(base: str) -> IFormerConfig:
    """A preset name (``iformer_small``, ``small``, ``iformer_base_384``, ...) or the path of a
    YAML/JSON model config file."""
    if base.endswith((".yaml", ".yml", ".json")):
        return IFormerConfig.load(base)
    return preset(base)


def parse_image_size(text: str | int, option: str = "--img-size") -> tuple[int, int]:
    """``224``, ``224x320`` or ``224*320`` as (height, width)."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise ConfigError(f"{option} {text!r} is not an image size; give one number (224) or "
                          f"HEIGHTxWIDTH (224x320).")
    return sizes[0], sizes[-1]
