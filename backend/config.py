"""Typed settings: dataclasses loaded from JSON with every key checked.

NGD's research code reads loose config keys and silently ignores typos; here an
unknown, missing or mistyped key is a ``ConfigError`` that names it (with its path
inside the file, e.g. ``settings.device``), so a misspelt option never goes unnoticed.

Supported field types: bool, int, float, str, pathlib.Path, typing.Literal[...],
``X | None``, tuple[X, ...], and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: Any, where: str, key_path: str = "") -> T:
    """Build dataclass ``cls`` from a JSON-like mapping, validating every key.

    Args:
        cls: a dataclass type.
        data: the decoded JSON object.
        where: the file (or object) for messages, e.g. ``"/jobs/a/job.json"``.
        key_path: where ``data`` sits inside it, e.g. ``"settings"`` (nested calls).

    Raises:
        ConfigError: unknown key, missing required key, or a value of the wrong type;
            the message reads ``<where>: <key path>: <problem>``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{_at(where, key_path)}expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(repr(_join(key_path, k)) for k in unknown)
        raise ConfigError(
            f"{where}: unknown key(s) {names}; expected some of {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name not in data:
            required = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if required:
                raise ConfigError(f"{where}: missing required key {_join(key_path, name)!r}")
            continue
        kwargs[name] = _convert(hints[name], data[name], where, _join(key_path, name))
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Inverse of ``from_dict``: a JSON-serialisable structure (Paths become strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def _join(key_path: str, key: str) -> str:
    return f"{key_path}.{key}" if key_path else key


def _at(where: str, key_path: str) -> str:
    return f"{where}: {key_path}: " if key_path else f"{where}: "


def _convert(tp: Any, value: Any, where: str, key_path: str) -> Any:
    at = _at(where, key_path)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], value, where, key_path)
        raise TypeError(f"unsupported union type {tp} at {key_path}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"{at}expected one of {', '.join(repr(a) for a in args)}; got {value!r}"
            )
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{at}expected a list, got {type(value).__name__}")
        item_type = args[0]
        return tuple(
            _convert(item_type, v, where, f"{key_path}[{i}]") for i, v in enumerate(value)
        )
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, key_path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{at}expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{at}expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{at}expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{at}expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{at}expected a path string, got {value!r}")
        return Path(value)
    raise TypeError(f"unsupported field type {tp} at {key_path}")
