"""Hypothesis strategies that build any Kaizen event from its model's type hints."""

from __future__ import annotations

import types
import typing
import uuid
from datetime import UTC
from typing import Any

import annotated_types
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from shared.events.base import Event
from shared.events.envelope import Envelope

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _bounds(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            found["min_value"] = meta.ge
        elif isinstance(meta, annotated_types.Le):
            found["max_value"] = meta.le
        elif isinstance(meta, annotated_types.MinLen):
            found["min_size"] = meta.min_length
        elif isinstance(meta, annotated_types.MaxLen):
            found["max_size"] = meta.max_length
        elif getattr(meta, "pattern", None):
            found["pattern"] = meta.pattern
    return found


def for_type(tp: Any, bounds: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    bounds = bounds or {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[for_type(a, bounds) for a in args])
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(for_type(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(
            st.text(max_size=8), json_values if args[1] is Any else for_type(args[1]), max_size=3
        )
    if tp is type(None):
        return st.none()
    if tp is uuid.UUID:
        return st.uuids()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(
            min_value=bounds.get("min_value", -(2**40)), max_value=bounds.get("max_value", 2**40)
        )
    if tp is float:
        return st.floats(
            bounds.get("min_value"), bounds.get("max_value"), allow_nan=False, allow_infinity=False
        )
    if tp is str:
        if "pattern" in bounds:
            return st.from_regex(bounds["pattern"], fullmatch=True)
        return st.text(min_size=bounds.get("min_size", 0), max_size=min(bounds.get("max_size", 30), 30))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return model(tp)
    raise NotImplementedError(f"no strategy for {tp!r}")


def model(cls: type[BaseModel]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {name: for_type(hints[name], _bounds(info)) for name, info in cls.model_fields.items()}
    return st.builds(cls, **fields)


def envelopes(event_cls: type[Event]) -> st.SearchStrategy[Envelope]:
    return st.builds(
        lambda event, corr, when: Envelope.wrap(event, source="tests", correlation_id=corr, time=when),
        model(event_cls),
        st.none() | st.text(max_size=20),
        st.datetimes(timezones=st.just(UTC)),
    )
