"""Upcasters: turn old records into the current layout before decoding.

Two kinds. :func:`upcast_envelope` renames the attributes of an envelope v1 record
(snake_case extension names, which the CloudEvents spec forbids) to envelope v2's
(``taskid``, ``jobid``, ``correlationid``, ``causationid``); a record is v1 when it
carries any of the old names (v1 wrote all four on every record, null or not).

An event upcaster maps ``(type, data)`` of an old event version to the next version.
They chain, so an event written years ago still decodes with today's models. None
exist yet: every type is at v1. Register one with :func:`upcaster` when a ``vN`` is
bumped, and add the old event to ``tests/fixtures/histories/`` so the golden replay test
keeps it honest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Data = dict[str, Any]

#: Envelope v1 attribute name → envelope v2 (CloudEvents-conforming) name.
ENVELOPE_V1_NAMES = {
    "task_id": "taskid",
    "job_id": "jobid",
    "correlation_id": "correlationid",
    "causation_id": "causationid",
}


def is_envelope_v1(raw: Data) -> bool:
    """True for a record written before the CloudEvents-conforming attribute names."""
    return not raw.keys().isdisjoint(ENVELOPE_V1_NAMES)  # a set operation: every record is asked


def upcast_envelope(raw: Data) -> Data:
    """An envelope v1 record with its attributes renamed to v2; v2 records as they are.

    v1 wrote absent attributes as ``null``; v2 leaves them out, so nulls are dropped too.
    Raises ``ValueError`` for a record that mixes both layouts.
    """
    if not is_envelope_v1(raw):
        return raw
    mixed = sorted(new for new in ENVELOPE_V1_NAMES.values() if new in raw)
    if mixed:
        raise ValueError(f"record mixes envelope v1 and v2 attribute names ({', '.join(mixed)})")
    renamed = {ENVELOPE_V1_NAMES.get(name, name): value for name, value in raw.items()}
    return {name: value for name, value in renamed.items() if value is not None or name == "data"}


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


def has_upcaster(type_: str) -> bool:
    """Whether records of ``type_`` are changed before they decode (the codec's fast path skips them)."""
    return type_ in _UPCASTERS


def upcast(type_: str, data: Data) -> tuple[str, Data]:
    """Apply upcasters until the type has none; returns the current ``(type, data)``."""
    seen = set()
    while type_ in _UPCASTERS:
        if type_ in seen:
            raise RuntimeError(f"upcaster cycle at {type_}")
        seen.add(type_)
        type_, data = _UPCASTERS[type_](data)
    return type_, data
