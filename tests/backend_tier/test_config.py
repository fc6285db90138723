"""backend.config: dataclasses from JSON with every key checked, errors naming the key path."""

# No ``from __future__ import annotations``: the field types below are real objects,
# so get_type_hints never has to resolve names in this (importlib-mode) module.

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from backend.config import from_dict, to_dict
from backend.errors import BackendError, ConfigError


@dataclass(frozen=True)
class Inner:
    level: int
    name: str = "inner"


@dataclass(frozen=True)
class Settings:
    flag: bool
    count: int
    scale: float
    label: str
    path: Path
    mode: Literal["fast", "slow"]
    limit: int | None
    sizes: tuple[int, ...]
    inner: Inner
    items: tuple[Inner, ...] = ()
    note: str | None = None
    extra: Inner = field(default_factory=lambda: Inner(level=0))


FULL = {
    "flag": True,
    "count": 3,
    "scale": 0.5,
    "label": "hello",
    "path": "some/dir/file.txt",
    "mode": "slow",
    "limit": None,
    "sizes": [1, 2, 3],
    "inner": {"level": 2, "name": "x"},
    "items": [{"level": 1, "name": "a"}, {"level": 5, "name": "b"}],
    "note": "n",
    "extra": {"level": 7, "name": "e"},
}


def load(**changes) -> Settings:
    return from_dict(Settings, {**FULL, **changes}, "cfg")


def error_of(data, where: str = "cfg") -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(Settings, data, where)
    assert isinstance(info.value, BackendError)
    return str(info.value)


def test_every_field_type_converts():
    s = load()
    assert s == Settings(
        flag=True, count=3, scale=0.5, label="hello", path=Path("some/dir/file.txt"),
        mode="slow", limit=None, sizes=(1, 2, 3), inner=Inner(2, "x"),
        items=(Inner(1, "a"), Inner(5, "b")), note="n", extra=Inner(7, "e"),
    )
    assert isinstance(s.path, Path)
    assert isinstance(s.sizes, tuple) and isinstance(s.items, tuple)


def test_round_trip_through_json_is_exact():
    s = load(limit=10)
    data = to_dict(s)
    assert data["path"] == "some/dir/file.txt"
    assert data["sizes"] == [1, 2, 3]
    assert data["inner"] == {"level": 2, "name": "x"}
    again = from_dict(Settings, json.loads(json.dumps(data)), "cfg")
    assert again == s
    assert to_dict(again) == data


def test_defaults_fill_missing_optional_keys():
    minimal = {k: v for k, v in FULL.items() if k not in ("items", "note", "extra", "inner")}
    s = from_dict(Settings, {**minimal, "inner": {"level": 1}}, "cfg")
    assert s.items == () and s.note is None and s.extra == Inner(level=0)
    assert s.inner == Inner(level=1, name="inner")


def test_int_is_accepted_as_float():
    s = load(scale=2)
    assert s.scale == 2.0 and type(s.scale) is float


def test_bool_is_not_accepted_as_int():
    assert "cfg: count: expected an integer, got True" in error_of({**FULL, "count": True})


def test_bool_is_not_accepted_as_float():
    assert "cfg: scale: expected a number, got False" in error_of({**FULL, "scale": False})


def test_optional_int_accepts_none_and_int_but_checks_the_int():
    assert load(limit=None).limit is None
    assert load(limit=4).limit == 4
    assert "cfg: limit: expected an integer, got 'four'" in error_of({**FULL, "limit": "four"})


def test_unknown_key_is_named():
    message = error_of({**FULL, "cuont": 1})
    assert message.startswith("cfg: unknown key(s) 'cuont'")
    assert "count" in message  # the valid keys are listed


def test_unknown_key_in_a_nested_dataclass_is_named_with_its_path():
    message = error_of({**FULL, "inner": {"level": 1, "nmae": "x"}})
    assert message.startswith("cfg: unknown key(s) 'inner.nmae'")


def test_unknown_key_in_a_tuple_of_dataclasses_is_named_with_its_index():
    message = error_of({**FULL, "items": [{"level": 1}, {"level": 2, "lvl": 3}]})
    assert message.startswith("cfg: unknown key(s) 'items[1].lvl'")


def test_missing_required_key_is_named():
    data = dict(FULL)
    del data["mode"]
    assert error_of(data) == "cfg: missing required key 'mode'"


def test_missing_required_nested_key_is_named_with_its_path():
    assert error_of({**FULL, "inner": {"name": "x"}}) == "cfg: missing required key 'inner.level'"


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("flag", 1, "cfg: flag: expected true/false, got 1"),
        ("flag", "true", "cfg: flag: expected true/false, got 'true'"),
        ("count", 1.0, "cfg: count: expected an integer, got 1.0"),
        ("count", "3", "cfg: count: expected an integer, got '3'"),
        ("count", None, "cfg: count: expected an integer, got None"),
        ("scale", "0.5", "cfg: scale: expected a number, got '0.5'"),
        ("label", 5, "cfg: label: expected a string, got 5"),
        ("path", 5, "cfg: path: expected a path string, got 5"),
        ("path", "", "cfg: path: expected a path string, got ''"),
        ("mode", "medium", "cfg: mode: expected one of 'fast', 'slow'; got 'medium'"),
        ("sizes", "1,2", "cfg: sizes: expected a list, got str"),
        ("sizes", [1, "2"], "cfg: sizes[1]: expected an integer, got '2'"),
        ("inner", [2], "cfg: inner: expected an object, got list"),
        ("inner", {"level": "2"}, "cfg: inner.level: expected an integer, got '2'"),
        ("items", [{"level": 1}, {"level": 2.5}],
         "cfg: items[1].level: expected an integer, got 2.5"),
    ],
)
def test_wrong_type_names_the_key_path(key, value, message):
    assert error_of({**FULL, key: value}) == message


def test_top_level_must_be_an_object():
    assert error_of([FULL], where="settings.json") == (
        "settings.json: expected an object, got list")


def test_unsupported_field_type_is_a_programming_error_not_a_config_error():
    @dataclass
    class Odd:
        value: dict

    with pytest.raises(TypeError, match="unsupported field type"):
        from_dict(Odd, {"value": {}}, "cfg")


def test_fields_not_in_init_are_not_accepted_as_keys():
    @dataclass
    class WithDerived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    assert from_dict(WithDerived, {"a": 1}, "cfg").a == 1
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(WithDerived, {"a": 1, "b": 2}, "cfg")
