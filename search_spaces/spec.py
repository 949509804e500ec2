"""Space files: what a YAML space file says, checked key by key, with the line of every key.

A space file names a base model, a family and, optionally, per-stage bounds, fixed blocks and
options of the smooth family (see README.md in this package). Every mistake is reported as
``<file>, line N: <key> ...`` with the fix, because PyYAML's node marks give the lines.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from .errors import SpaceError

FAMILIES: tuple[str, ...] = ("free", "monotone", "stagewise", "smooth")
TOP_KEYS = ("name", "description", "family", "base", "allow_ends", "stages", "fixed", "smooth")
STAGE_KEYS = ("min_heads", "max_heads", "min_high_ratio", "max_high_ratio")
DEFAULT_BASE = "iformer_small"


@dataclass(frozen=True)
class StageBounds:
    """Bounds of one stage's attention heads; ratios are C_h/C and kept exact."""

    min_heads: int | None = None
    max_heads: int | None = None
    min_high_ratio: Fraction | None = None
    max_high_ratio: Fraction | None = None


@dataclass(frozen=True)
class SmoothOptions:
    """Grids of the smooth family's four parameters (Optuna floats with a step)."""

    ratio_step: float = 0.05
    midpoint_step: float = 0.1
    max_steepness: float = 24.0
    steepness_step: float = 2.0


@dataclass(frozen=True)
class SpaceFile:
    """The checked content of a space file. ``lines`` maps a key path such as
    ``stages.3.min_heads`` to its 1-based line, so later checks against the base config can
    still point at the line."""

    source: str
    name: str
    family: str
    description: str = ""
    base: str | None = None
    allow_ends: bool = True
    stages: dict[int, StageBounds] = field(default_factory=dict)
    fixed: dict[int, int] = field(default_factory=dict)
    smooth: SmoothOptions = SmoothOptions()
    lines: dict[str, int] = field(default_factory=dict)

    def error(self, key: str, problem: str) -> SpaceError:
        """A SpaceError for ``key``: ``<source>, line N: <key> <problem>``."""
        line = self.lines.get(key)
        where = f"{self.source}, line {line}" if line else self.source
        return SpaceError(f"{where}: {key} {problem}")


def read_space_file(path: str | Path, source: str | None = None) -> SpaceFile:
    """Read and check a space file. ``base`` comes back as written, except that a relative
    model-file path is made relative to the space file's folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpaceError(f"cannot read space file {path}: {exc.strerror}; check the "
                         f"path.") from None
    space = parse_space_text(text, source=source or str(path), default_name=path.stem)
    if space.base and _is_model_file(space.base) and not Path(space.base).is_absolute():
        space = replace(space, base=str(path.parent / space.base))
    return space


def parse_space_text(text: str, source: str, default_name: str) -> SpaceFile:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f", line {mark.line + 1}" if mark else ""
        raise SpaceError(f"{source}{line}: not valid YAML ({exc.problem}); fix the syntax "
                         f"there.") from None
    if root is None:
        raise SpaceError(f"{source} is empty; a space file needs at least 'family: "
                         f"{' | '.join(FAMILIES)}'.")
    reader = _NodeReader(source)
    top = reader.mapping(root, "", TOP_KEYS)
    if "family" not in top:
        raise SpaceError(f"{source}: the key 'family' is missing; add 'family: monotone' (or "
                         f"{', '.join(f for f in FAMILIES if f != 'monotone')}).")
    family = reader.choice(top["family"], "family", FAMILIES)
    fields: dict[str, Any] = {"family": family}
    if "name" in top:
        fields["name"] = reader.text(top["name"], "name")
    if "description" in top:
        fields["description"] = reader.text(top["description"], "description")
    if "base" in top:
        fields["base"] = reader.text(top["base"], "base")
    if "allow_ends" in top:
        fields["allow_ends"] = reader.boolean(top["allow_ends"], "allow_ends")
    if "stages" in top:
        fields["stages"] = _stages(reader, top["stages"])
    if "fixed" in top:
        fields["fixed"] = _fixed(reader, top["fixed"])
    if "smooth" in top:
        if family != "smooth":
            raise SpaceError(f"{source}, line {reader.lines['smooth']}: smooth options apply "
                             f"only to 'family: smooth', and this file says {family!r}; remove "
                             f"the smooth block or change the family.")
        fields["smooth"] = _smooth(reader, top["smooth"])
    return SpaceFile(source=source, name=fields.pop("name", default_name), lines=reader.lines,
                     **fields)


# ------------------------------------------------------------------------------ sections
def _stages(reader: _NodeReader, node: yaml.Node) -> dict[int, StageBounds]:
    stages: dict[int, StageBounds] = {}
    for key_node, value_node in reader.items(node, "stages"):
        stage = reader.key_int(key_node, "stages", 1, 4, "a stage number 1 to 4")
        path = f"stages.{stage}"
        entries = reader.mapping(value_node, path, STAGE_KEYS)
        bounds: dict[str, Any] = {}
        for key in ("min_heads", "max_heads"):
            if key in entries:
                bounds[key] = reader.integer(entries[key], f"{path}.{key}", minimum=0)
        for key in ("min_high_ratio", "max_high_ratio"):
            if key in entries:
                bounds[key] = reader.ratio(entries[key], f"{path}.{key}")
        # A ratio bound and a head bound on the same side would disagree sooner or later.
        for heads_key, ratio_key in (("min_heads", "max_high_ratio"),
                                     ("max_heads", "min_high_ratio")):
            if heads_key in bounds and ratio_key in bounds:
                raise reader.error(f"{path}.{ratio_key}", f"bounds the same side as "
                                   f"{path}.{heads_key}; keep one of the two.")
        stages[stage] = StageBounds(**bounds)
    return stages


def _fixed(reader: _NodeReader, node: yaml.Node) -> dict[int, int]:
    fixed: dict[int, int] = {}
    for key_node, value_node in reader.items(node, "fixed"):
        block = reader.key_int(key_node, "fixed", 0, None, "a block index (0-based)")
        fixed[block] = reader.integer(value_node, f"fixed.{block}", minimum=0)
    return fixed


def _smooth(reader: _NodeReader, node: yaml.Node) -> SmoothOptions:
    names = tuple(SmoothOptions.__dataclass_fields__)
    entries = reader.mapping(node, "smooth", names)
    values = {name: reader.positive(entries[name], f"smooth.{name}") for name in entries}
    options = SmoothOptions(**values)
    for name, span in (("ratio_step", 1.0), ("midpoint_step", 1.0),
                       ("steepness_step", options.max_steepness)):
        step = getattr(options, name)
        if step > span or abs(span / step - round(span / step)) > 1e-9:
            key = f"smooth.{name}" if name in entries else "smooth.max_steepness"
            raise reader.error(key, f"must divide {span:g} into whole steps (step {step:g}); "
                               f"use e.g. {span / max(1, round(span / step)):g}.")
    return options


# ------------------------------------------------------------------------------ reading
class _NodeReader:
    """Turns YAML nodes into checked Python values, remembering the line of every key."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self._constructor = SafeConstructor()

    def error(self, key: str, problem: str) -> SpaceError:
        line = self.lines.get(key)
        where = f"{self.source}, line {line}" if line else self.source
        return SpaceError(f"{where}: {key} {problem}")

    def value(self, node: yaml.Node, key: str) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            raise self.error(key, f"cannot be read ({exc.problem}).") from None

    def items(self, node: yaml.Node, key: str) -> list[tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(key, "must be a mapping (indented 'key: value' lines).")
        return list(node.value)

    def mapping(self, node: yaml.Node, key: str, known: tuple[str, ...]) -> dict[str, yaml.Node]:
        """The entries of a mapping whose keys must be among ``known``."""
        if not isinstance(node, yaml.MappingNode):
            what = "the file" if not key else key
            line = node.start_mark.line + 1
            raise SpaceError(f"{self.source}, line {line}: {what} must be a mapping of keys "
                             f"({', '.join(known)}).")
        entries: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            path = f"{key}.{name}" if key else str(name)
            self.lines[path] = key_node.start_mark.line + 1
            if name not in known:
                hint = difflib.get_close_matches(str(name), known, n=1)
                fix = f"did you mean {hint[0]!r}?" if hint else f"known keys: {', '.join(known)}."
                raise self.error(path, f"is not a key of {key or 'a space file'}; {fix}")
            if name in entries:
                raise self.error(path, "is given twice; keep one.")
            entries[name] = value_node
        return entries

    def key_int(self, node: yaml.Node, key: str, low: int, high: int | None, what: str) -> int:
        raw = self.value(node, key)
        path = f"{key}.{raw}"
        self.lines[path] = node.start_mark.line + 1
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < low or (
                high is not None and raw > high):
            raise self.error(path, f"is not {what}.")
        return raw

    def text(self, node: yaml.Node, key: str) -> str:
        raw = self.value(node, key)
        if not isinstance(raw, str) or not raw.strip():
            raise self.error(key, f"must be a non-empty string, not {raw!r}.")
        return raw.strip()

    def choice(self, node: yaml.Node, key: str, choices: tuple[str, ...]) -> str:
        raw = self.text(node, key)
        if raw not in choices:
            raise self.error(key, f"{raw!r} is not one of {', '.join(choices)}.")
        return raw

    def boolean(self, node: yaml.Node, key: str) -> bool:
        raw = self.value(node, key)
        if not isinstance(raw, bool):
            raise self.error(key, f"must be true or false, not {raw!r}.")
        return raw

    def integer(self, node: yaml.Node, key: str, minimum: int) -> int:
        raw = self.value(node, key)
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
            raise self.error(key, f"must be a whole number of attention heads (>= {minimum}), "
                             f"not {raw!r}.")
        return raw

    def ratio(self, node: yaml.Node, key: str) -> Fraction:
        raw = self.value(node, key)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 1:
            raise self.error(key, f"must be a C_h/C ratio between 0 and 1, not {raw!r}.")
        return Fraction(str(raw))  # 0.3 means 3/10 exactly, not the nearest double

    def positive(self, node: yaml.Node, key: str) -> float:
        raw = self.value(node, key)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not raw > 0:
            raise self.error(key, f"must be a positive number, not {raw!r}.")
        return float(raw)


def _is_model_file(base: str) -> bool:
    return base.endswith((".yaml", ".yml", ".json"))
