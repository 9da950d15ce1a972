"""Turn pydantic validation errors into lines a producer can act on: file, field, problem."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError


def field_path(loc: Iterable[int | str]) -> str:
    """``('assets', 3, 'focus')`` -> ``assets[3].focus``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(err: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "is required"
    if kind == "too_short" and isinstance(err.get("input"), str):
        kind = "string_too_short"
    if kind == "string_too_short":
        minimum = ctx.get("min_length")
        return "must not be empty" if minimum == 1 else f"must be at least {minimum} characters"
    if kind == "string_too_long":
        return f"is too long (at most {ctx.get('max_length')} characters)"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"has too many items (at most {ctx.get('max_length')})"
    return str(err["msg"]).removeprefix("Value error, ")


def describe(exc: ValidationError, source: str) -> str:
    """One line per problem: ``<source>: <field path>: <what is wrong>``."""
    lines = [f"{source}: {field_path(err['loc'])}: {_message(err)}"
             for err in exc.errors(include_url=False)]
    return "\n".join(dict.fromkeys(lines))
