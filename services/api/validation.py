"""Pydantic's validation errors in plain words: ``limit: must be at most 200``.

Clients see the field and the rule it broke, never a Python repr or the rejected value
(which could be a secret, e.g. a Git token of the wrong type).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

_SOURCES = {"body", "query", "path", "header", "cookie"}


class FieldError(BaseModel):
    """One broken rule: which field, and what it must be."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _num(value: Any) -> Any:
    """``1`` rather than ``1.0`` for a float bound that is whole."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


Rule = Callable[[Mapping[str, Any]], str]

_RULES: dict[str, Rule] = {
    "missing": lambda c: "is required",
    "greater_than_equal": lambda c: f"must be at least {_num(c.get('ge'))}",
    "greater_than": lambda c: f"must be greater than {_num(c.get('gt'))}",
    "less_than_equal": lambda c: f"must be at most {_num(c.get('le'))}",
    "less_than": lambda c: f"must be less than {_num(c.get('lt'))}",
    "int_parsing": lambda c: "must be an integer",
    "int_type": lambda c: "must be an integer",
    "int_from_float": lambda c: "must be an integer",
    "float_parsing": lambda c: "must be a number",
    "float_type": lambda c: "must be a number",
    "finite_number": lambda c: "must be a finite number",
    "bool_parsing": lambda c: "must be true or false",
    "bool_type": lambda c: "must be true or false",
    "string_type": lambda c: "must be a string",
    "string_too_short": lambda c: (
        "must not be empty"
        if c.get("min_length") == 1
        else f"must be at least {_count(c.get('min_length'), 'character')} long"
    ),
    "string_too_long": lambda c: f"must be at most {_count(c.get('max_length'), 'character')} long",
    "string_pattern_mismatch": lambda c: f"must match the pattern {c.get('pattern')}",
    "uuid_parsing": lambda c: "must be a UUID",
    "uuid_type": lambda c: "must be a UUID",
    "uuid_version": lambda c: "must be a UUID",
    "literal_error": lambda c: f"must be one of {c.get('expected')}",
    "enum": lambda c: f"must be one of {c.get('expected')}",
    "dict_type": lambda c: "must be an object",
    "model_type": lambda c: "must be an object",
    "model_attributes_type": lambda c: "must be an object",
    "list_type": lambda c: "must be a list",
    "too_short": lambda c: (
        "must not be empty"
        if c.get("min_length") == 1
        else f"must have at least {_count(c.get('min_length'), 'item')}"
    ),
    "too_long": lambda c: f"must have at most {_count(c.get('max_length'), 'item')}",
    "extra_forbidden": lambda c: "is not a known field",
    "json_invalid": lambda c: "is not valid JSON",
    "datetime_parsing": lambda c: "must be an ISO 8601 date-time",
    "datetime_type": lambda c: "must be an ISO 8601 date-time",
    "url_parsing": lambda c: "must be a URL",
    # storable.py: what PostgreSQL text cannot hold.
    "unstorable_text": lambda c: "must not contain a NUL character or an unpaired surrogate",
    "unstorable_key": lambda c: "must not have a key with a NUL character or an unpaired surrogate",
}


def _field(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in _SOURCES:
        source = parts.pop(0)
        if not parts:
            return str(source)
    # Union members add their type to the location ("list[str]"); a person names the field.
    names = [str(p) for p in parts if not (isinstance(p, str) and ("[" in p or "(" in p))]
    return ".".join(names) or "body"


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    rule = _RULES.get(kind)
    if rule is not None:
        return rule(error.get("ctx") or {})
    message = str(error.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def describe(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """One entry per field; a union's alternatives are merged into "… or …"."""
    merged: dict[str, list[str]] = {}
    for error in errors:
        messages = merged.setdefault(_field(error.get("loc", ())), [])
        message = _message(error)
        if message not in messages:
            messages.append(message)
    return [FieldError(field=field, message=" or ".join(messages)) for field, messages in merged.items()]


def summary(errors: Sequence[FieldError]) -> str:
    """The ``detail`` of a 422: every error, ``field: rule``, joined by ``; ``."""
    return "; ".join(str(e) for e in errors)
