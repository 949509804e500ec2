"""Built-in space names, and turning a space file plus a base config into a SearchSpace."""

from __future__ import annotations

from fractions import Fraction
from importlib import resources
from pathlib import Path

import iformer
from iformer import ConfigError, IFormerConfig

from .chain import ChainSpace, block_decisions, stage_decisions
from .errors import SpaceError
from .monotone import MonotoneSpace
from .smooth import SmoothSpace
from .space import SearchSpace
from .spec import DEFAULT_BASE, FAMILIES, SpaceFile, read_space_file


def space_names() -> list[str]:
    """The built-in spaces (the YAML files shipped in this package), families first."""
    names = [p.name.removesuffix(".yaml") for p in resources.files(__package__).iterdir()
             if p.name.endswith(".yaml")]
    order = {family: i for i, family in enumerate(FAMILIES)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def load_space(spec: str | Path, base: str | IFormerConfig | None = None,
               allow_ends: bool | None = None) -> SearchSpace:
    """A built-in space by name ('free', 'monotone', 'stagewise', 'smooth') or a YAML space
    file by path. ``base`` (a preset name, a model YAML/JSON path or a config) replaces the
    file's base; ``allow_ends`` replaces the file's ``allow_ends``."""
    text = str(spec)
    if text in space_names():
        with resources.as_file(resources.files(__package__) / f"{text}.yaml") as path:
            space_file = read_space_file(path, source=f"built-in space {text!r}")
    elif Path(text).is_file():
        space_file = read_space_file(text)
    else:
        raise SpaceError(f"there is no space {text!r}: use a built-in space "
                         f"({', '.join(space_names())}) or the path of a YAML space file "
                         f"(see the search_spaces README for the format).")
    return build_space(space_file, base, allow_ends)


def build_space(space_file: SpaceFile, base: str | IFormerConfig | None = None,
                allow_ends: bool | None = None) -> SearchSpace:
    if base is None:
        try:
            config, base_name = resolve_base(space_file.base or DEFAULT_BASE)
        except ConfigError as exc:
            raise space_file.error("base", f"names no model: {exc}") from None
    else:
        config, base_name = resolve_base(base)
    ends = space_file.allow_ends if allow_ends is None else allow_ends
    bounds = block_bounds(space_file, config, ends)
    common = dict(name=space_file.name, base=config, base_name=base_name, allow_ends=ends,
                  bounds=bounds, fixed=space_file.fixed, description=space_file.description)
    try:
        if space_file.family == "smooth":
            return SmoothSpace(options=space_file.smooth, **common)
        if space_file.family == "monotone":
            return MonotoneSpace(block_decisions(config, bounds, space_file.fixed), **common)
        if space_file.family == "stagewise":
            decisions = stage_decisions(config, bounds, space_file.fixed)
        else:
            decisions = block_decisions(config, bounds, space_file.fixed)
        return ChainSpace(space_file.family, decisions, monotone=False, **common)
    except SpaceError as exc:
        raise SpaceError(f"{space_file.source} on {base_name}: {exc}") from None


def resolve_base(base: str | IFormerConfig) -> tuple[IFormerConfig, str]:
    """A config and the name to show for it."""
    if isinstance(base, IFormerConfig):
        return base, "custom"
    if base.endswith((".yaml", ".yml", ".json")):
        return iformer.load_config(base), base
    short = iformer.preset_name(base)
    suffix = "_384" if base.strip().lower().endswith("_384") else ""
    return iformer.preset(base), f"iformer_{short}{suffix}"


def block_bounds(space_file: SpaceFile, config: IFormerConfig,
                 allow_ends: bool) -> list[tuple[int, int]]:
    """(min, max) attention heads of every block: allow_ends sets the default, a stage's
    bounds replace it on the side they name, and a fixed block has its one value."""
    stage_ranges = {}
    for stage, heads in enumerate(config.num_heads, start=1):
        low, high = (0, heads) if allow_ends else (1, heads - 1)
        bounds = space_file.stages.get(stage)
        key = f"stages.{stage}"
        if bounds is not None:
            if bounds.min_heads is not None:
                low = bounds.min_heads
            if bounds.max_high_ratio is not None:  # C_h/C <= r  <=>  a >= n (1 - r)
                low = _ceil(heads * (1 - bounds.max_high_ratio))
            if bounds.max_heads is not None:
                high = bounds.max_heads
            if bounds.min_high_ratio is not None:  # C_h/C >= r  <=>  a <= n (1 - r)
                high = int(heads * (1 - bounds.min_high_ratio))
            for name in ("min_heads", "max_heads"):
                value = getattr(bounds, name)
                if value is not None and value > heads:
                    raise space_file.error(f"{key}.{name}", f"is {value}, but stage {stage} of "
                                           f"this base has {heads} heads; use 0 to {heads}.")
        if low > high:
            problem = (f"leaves no head count for stage {stage} ({heads} heads): the least "
                       f"allowed is {low} and the most {high}")
            if bounds is None:
                raise space_file.error("allow_ends", f"is false, which {problem}; set "
                                       f"allow_ends: true or give {key} bounds.")
            raise space_file.error(key, f"{problem}; widen the bounds"
                                   + ("" if allow_ends else " or set allow_ends: true") + ".")
        stage_ranges[stage] = (low, high)
    bounds_per_block = [stage_ranges[s] for s in config.block_stages()]
    for block, value in space_file.fixed.items():
        if block >= len(bounds_per_block):
            raise space_file.error(f"fixed.{block}", f"names a block this base does not have; "
                                   f"blocks are 0 to {len(bounds_per_block) - 1}.")
        heads = config.num_heads[config.block_stages()[block] - 1]
        if value > heads:
            raise space_file.error(f"fixed.{block}", f"is {value}, but block {block} has "
                                   f"{heads} heads; use 0 to {heads}.")
        bounds_per_block[block] = (value, value)
    return bounds_per_block


def _ceil(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)
