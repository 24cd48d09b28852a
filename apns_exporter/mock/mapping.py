"""Strict conversion between plain mappings (from YAML/JSON) and the mock's frozen dataclasses."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class MappingError(ValueError):
    """A mapping that does not fit the dataclass; the message names the key at fault."""


def from_mapping(cls: type[T], data: object, location: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, Mapping):
        raise MappingError(f"{location or cls.__name__}: expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(map(str, data)) - fields.keys())
    if unknown:
        where = location or cls.__name__
        raise MappingError(f"{where}: unknown key(s) {', '.join(unknown)}")
    values = {
        name: _convert(hints[name], value, f"{location}.{name}" if location else name)
        for name, value in data.items()
    }
    return cls(**values)


def to_mapping(obj: object) -> Any:
    """The inverse of from_mapping: plain dicts, lists and scalars, ready for JSON or YAML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_mapping(v) for v in obj]
    return obj


def _convert(hint: Any, value: object, location: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None)]
        if isinstance(value, Mapping):
            # A mapping can only be meant as the dataclass alternative: report its own errors.
            candidates = [a for a in candidates if dataclasses.is_dataclass(a)] or candidates
        errors = []
        for candidate in candidates:
            try:
                return _convert(candidate, value, location)
            except MappingError as exc:
                errors.append(str(exc))
        if len(errors) == 1:
            raise MappingError(errors[0])
        raise MappingError(f"{location}: {_kind(value)} fits none of its types")
    if origin is typing.Literal:
        if value not in args:
            raise MappingError(f"{location}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise MappingError(f"{location}: expected a list, got {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{location}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise MappingError(f"{location}: expected {len(args)} items, got {len(value)}")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_convert(a, v, f"{location}[{i}]") for i, (a, v) in pairs)
    if dataclasses.is_dataclass(hint):
        return from_mapping(typing.cast(type, hint), value, location)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise MappingError(f"{location}: expected a number, got {_kind(value)}")
    if hint in (int, str, bool):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise MappingError(f"{location}: expected {hint.__name__}, got {_kind(value)}")
    if hint is Any:
        return value
    raise MappingError(f"{location}: unsupported type {hint!r}")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
