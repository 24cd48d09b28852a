"""Pydantic validation errors rewritten as one-line config diagnostics that say what to do."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from apns_exporter.config.yamlsource import KeyPath


def dotted(path: Sequence[str | int]) -> str:
    """A key path as written in messages: ``targets[0].auth.token``."""
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path).lstrip(".")


def describe(error: ErrorDetails, root: type[BaseModel]) -> tuple[KeyPath, str]:
    """A pydantic error as (key path, one-line message saying what to write instead).

    ``root`` is the model validation started from; unknown-key messages list its allowed keys.
    """
    loc, error_type, value = tuple(error["loc"]), error["type"], error.get("input")
    if error_type == "missing":
        return loc[:-1], f"missing required key {loc[-1]!r}"
    if error_type == "extra_forbidden":
        allowed = _allowed_keys(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return loc[:-1], f"unknown key {loc[-1]!r} ({hint}allowed: {', '.join(allowed)})"
    if error_type == "value_error":
        return loc, str(error.get("ctx", {}).get("error", error["msg"]))
    if error_type in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"expected a mapping of keys to values, got {kind(value)}"
    if error_type in ("tuple_type", "list_type"):
        return loc, f"expected a list, got {kind(value)}"
    if error_type == "string_type":
        return loc, f"expected a string, got {kind(value)} (put the value in quotes)"
    if error_type.startswith("int_"):
        return loc, f"expected a whole number, got {kind(value)}"
    if error_type.startswith("bool_"):
        return loc, f"expected true or false, got {kind(value)}"
    if error_type == "enum":
        shown = repr(value) if isinstance(value, str) else kind(value)
        return loc, f"must be {error.get('ctx', {}).get('expected')}, got {shown[:60]}"
    return loc, error["msg"]


def _allowed_keys(root: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys the model at ``path`` accepts, as written in YAML."""
    model: type[BaseModel] | None = root
    for step in path:
        if model is None or isinstance(step, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == step), None)
        model = _model_in(field.annotation) if field else None
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, (_model_in(arg) for arg in get_args(annotation))), None)


def kind(value: object) -> str:
    """How a YAML value reads in a message: "a string", "a list", "nothing (an empty value)"."""
    if value is None:
        return "nothing (an empty value)"
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    return names.get(type(value), f"a {type(value).__name__}")
