"""Typed, strict config loading: dataclasses are the schema, unknown keys are errors."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or mapping does not match its schema."""


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else f" Valid keys: {', '.join(sorted(valid))}."


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and checking ranges.

    Args:
        cls: a dataclass type; nested dataclass fields and ``dict[str, Dataclass]`` are built too.
        data: the mapping (as loaded from YAML); None means all defaults.
        where: dotted prefix used in error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: an unknown key (with the closest valid one), a wrong type or a bad range.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key '{name}'.{_suggest(str(key), list(fields))}")
        kwargs[key] = _convert(hints[key], value, name)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or 'config'}: {e}") from e
    return obj


def _convert(tp: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, name)
    if origin is dict and args and isinstance(args[1], type) and dataclasses.is_dataclass(args[1]):
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{name}: expected a non-empty mapping of names to entries")
        return {k: from_dict(args[1], v, f"{name}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or (
            len(args) == 2 and args[1] is not Ellipsis and len(value) != 2
        ):
            raise ConfigError(f"{name}: expected a list like {list(args)}, got {value!r}")
        return tuple(float(v) if a is float else v for v, a in zip(value, args * len(value)))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{name}: {value!r} is not one of {list(args)}")
        return value
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    return value


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load and validate a YAML config file into dataclass ``cls``.

    Raises:
        ConfigError: the file is missing, is not YAML, or does not match the schema.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from e
