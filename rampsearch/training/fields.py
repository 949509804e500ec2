"""Settings dataclasses read from YAML, JSON or flags: one way to coerce and check a value.

``ProxySettings`` (``rampsearch.proxy``) and ``TrainRecipe`` (``rampsearch.recipe``) are
dataclasses that people write by hand as files. Both turn a mapping into field values with
:func:`field_values` and check ranges with :func:`check_ranges`, so a mistake reads the same
in either: ``<where> <name> is <value>; ...``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError

KIND_NAMES = {int: "an integer", float: "a number", str: "a string"}


def unknown_keys(cls: type, data: Mapping[str, Any]) -> list[str]:
    """The keys of ``data`` that name no field of the dataclass ``cls``, sorted."""
    return sorted(set(data) - {f.name for f in dataclasses.fields(cls)})


def check_known_fields(cls: type, data: Mapping[str, Any], message: str) -> None:
    """Raise UserError with ``message`` (formatted with ``unknown`` and ``known``, the field
    names) when ``data`` has keys that name no field of the dataclass ``cls``."""
    unknown = unknown_keys(cls, data)
    if unknown:
        known = ", ".join(f.name for f in dataclasses.fields(cls))
        raise UserError(message.format(unknown=", ".join(unknown), known=known))


def settings_from_mapping(cls: type, data: Any, what: str) -> Any:
    """A settings dataclass (with ``validate()``) from a mapping of its field names, written by
    hand or stored: ``what`` names it in errors ("proxy": "unknown proxy setting(s) ...")."""
    if not isinstance(data, Mapping):
        raise UserError(f"{what} settings must be a mapping of names to values, got "
                        f"{type(data).__name__}.")
    check_known_fields(cls, data, f"unknown {what} setting(s) {{unknown}}; known settings are "
                                  f"{{known}}.")
    settings = cls(**field_values(cls, data, where=f"{what} setting"))
    settings.validate()
    return settings


def field_values(cls: type, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``data`` with every value coerced to its field's type (reject unknown keys first)."""
    hints = typing.get_type_hints(cls)
    return {name: coerce(name, value, hints[name], where) for name, value in data.items()}


def coerce(name: str, value: Any, kind: Any, where: str) -> Any:
    """A YAML/JSON value as the type ``kind``: ints stay ints, 1 and 1e-3 both fit a float,
    ``None`` fits an optional field. Anything else is a UserError naming ``where`` and
    ``name``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kind = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    problem = f"{where} {name} is {value!r}; {name} must be"
    if origin is list:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise UserError(f"{problem} a list, e.g. {name}: [1, 2].")
        return [coerce(name, v, args[0], where) for v in value]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise UserError(f"{problem} a mapping of names to values.")
        return dict(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise UserError(f"{problem} true or false.")
        return value
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    # bool is an int to Python, never to a person writing a settings file.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise UserError(f"{problem} {KIND_NAMES.get(kind, kind)}.")
    return value


def check_ranges(settings: Any, checks: Iterable[tuple[bool, str, str]], where: str) -> None:
    """Raise UserError for the first ``(ok, field name, what to use)`` that is not ok."""
    for ok, name, expected in checks:
        if not ok:
            raise UserError(f"{where} {name} is {getattr(settings, name)!r}; use {expected}.")


def read_mapping_file(path: Path, unreadable: Callable[[OSError], str],
                      invalid: Callable[[yaml.YAMLError], str], not_mapping: str,
                      empty_ok: bool = False) -> dict[str, Any]:
    """The mapping a YAML (or JSON) file holds, or a UserError: ``unreadable`` and ``invalid``
    word the file's OSError and YAML error, ``not_mapping`` a file that holds something else;
    with ``empty_ok`` an empty file is an empty mapping."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(unreadable(exc)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(invalid(exc)) from None
    if empty_ok and not data:
        return {}
    if not isinstance(data, Mapping):
        raise UserError(not_mapping)
    return dict(data)
