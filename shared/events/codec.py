"""The only code that turns events into bytes and back.

Records are CloudEvents 1.0 in structured mode: the value is the whole event in the JSON
event format (UTF-8), with the attribute names of envelope v2 (``docs/events/envelope.md``).
The key is the ``partitionkey`` attribute: the task id for task-scoped events. Records
of envelope v1 are upcast when decoded.
Anything that fails to decode raises :class:`PoisonRecord` with a reason a person can
read; consumers send such records to the dead-letter topic and carry on.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shared.events.envelope import Envelope
from shared.events.registry import EVENT_TYPES
from shared.events.upcasters import upcast, upcast_envelope

#: The Kafka ``content-type`` header of a structured-mode CloudEvents record (JSON format).
CONTENT_TYPE = "application/cloudevents+json"  # JSON is UTF-8 (RFC 8259); as the SDK writes it


class PoisonRecord(ValueError):
    """A record that is not a valid Kaizen event. ``reason`` goes to the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(envelope: Envelope) -> bytes:
    """The record value: the envelope in the CloudEvents JSON format (wire names, no nulls)."""
    return envelope.model_dump_json(by_alias=True).encode()


def headers() -> list[tuple[str, bytes]]:
    """Kafka headers of every record: the structured-mode ``content-type`` of the binding."""
    return [("content-type", CONTENT_TYPE.encode())]


def decode(value: bytes | None) -> Envelope:
    """Bytes → envelope with a typed ``data``; upcasts old event versions first."""
    if value is None:
        raise PoisonRecord("record has no value (tombstone)")
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonRecord(f"record is not UTF-8 JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PoisonRecord(f"record is JSON {type(raw).__name__}, expected an object")
    return decode_dict(raw)


def decode_dict(raw: dict[str, Any]) -> Envelope:
    try:
        raw = upcast_envelope(raw)
    except ValueError as exc:
        raise PoisonRecord(str(exc)) from exc
    type_ = raw.get("type")
    data = raw.get("data")
    if not isinstance(type_, str) or not isinstance(data, dict):
        raise PoisonRecord("record lacks a string `type` or an object `data`")
    type_, data = upcast(type_, data)
    model = EVENT_TYPES.get(type_)
    if model is None:
        raise PoisonRecord(f"unknown event type {type_!r}")
    try:
        event = model.model_validate(data)
        return Envelope.model_validate({**raw, "type": type_, "data": event})
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise PoisonRecord(f"invalid {type_}: {errors}") from exc
