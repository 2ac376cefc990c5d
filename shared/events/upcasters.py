"""Upcasters: turn old versions of an event into the current one before decoding.

An upcaster maps ``(type, data)`` of an old version to the next version. They chain, so
an event written years ago still decodes with today's models. None exist yet: every
type is at v1. Register one with :func:`upcaster` when a ``vN`` is bumped, and add the
old event to ``tests/fixtures/histories/`` so the golden replay test keeps it honest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Data = dict[str, Any]
Upcaster = Callable[[Data], tuple[str, Data]]

_UPCASTERS: dict[str, Upcaster] = {}


def upcaster(old_type: str) -> Callable[[Upcaster], Upcaster]:
    """Register ``fn`` as the step from ``old_type`` to its successor."""

    def register(fn: Upcaster) -> Upcaster:
        if old_type in _UPCASTERS:
            raise RuntimeError(f"an upcaster for {old_type} exists already")
        _UPCASTERS[old_type] = fn
        return fn

    return register


def upcast(type_: str, data: Data) -> tuple[str, Data]:
    """Apply upcasters until the type has none; returns the current ``(type, data)``."""
    seen = set()
    while type_ in _UPCASTERS:
        if type_ in seen:
            raise RuntimeError(f"upcaster cycle at {type_}")
        seen.add(type_)
        type_, data = _UPCASTERS[type_](data)
    return type_, data
