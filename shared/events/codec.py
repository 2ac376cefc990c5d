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
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.events.registry import EVENT_TYPES
from shared.events.upcasters import has_upcaster, upcast, upcast_envelope

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
    envelope = _decode_current(value)
    return envelope if envelope is not None else _decode_general(value)


def _decode_general(value: bytes) -> Envelope:
    """Any record, of any layout or version: JSON first, then :func:`decode_dict`."""
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


#: Where ``encode`` writes the type: ``{"specversion":"1.0","id":"…","type":"…"``.
_TYPE_MARK = b'"type":"'


def _decode_current(value: bytes) -> Envelope | None:
    """The common record in one pydantic pass from bytes, or ``None`` to take the general path.

    Decoding was a quarter of a rebuild's CPU: ``json.loads``, then the event's model, then
    the envelope's, through its Python ``_drop_derived`` step. A record of the current
    envelope layout whose type has no upcaster is validated here by one model per type —
    the envelope's fields with that type's model as ``data`` — straight from the JSON
    bytes, in pydantic's core. Anything else returns ``None`` and goes the general way: an
    older layout (its snake_case names are unknown fields here), an upcast type, a type
    not found where ``encode`` puts it, and every record this refuses, so a poison
    record's reason is the one :func:`decode_dict` gives. The envelope returned is the one
    the general path builds, field for field (``tests/unit/test_codec_fast_path.py``).
    """
    start = value.find(_TYPE_MARK)
    if start < 0:
        return None
    start += len(_TYPE_MARK)
    type_ = value[start : value.find(b'"', start)]
    shape = _SHAPES[type_] if type_ in _SHAPES else _shape(type_)
    if shape is None or has_upcaster(shape.TYPE):  # an upcaster registered since: its path
        return None
    try:
        parsed = shape.model_validate_json(value)
    except ValidationError:
        return None
    state = parsed.__getstate__()
    values = state["__dict__"]
    if values["type"] != shape.TYPE:  # the mark found was not the record's own ``type``
        return None
    del values["partitionkey"]  # derived, never stored: what ``Envelope._drop_derived`` does
    envelope = Envelope.__new__(Envelope)
    # pydantic's unpickling: the fields validated above, as an Envelope, with no second pass
    # (``model_construct`` gives the same object at twice the cost of the whole decode).
    envelope.__setstate__(
        {
            "__dict__": values,
            "__pydantic_fields_set__": state["__pydantic_fields_set__"] - _DERIVED,
            "__pydantic_extra__": state["__pydantic_extra__"],
            "__pydantic_private__": state["__pydantic_private__"],
        }
    )
    return envelope


_DERIVED = frozenset({"partitionkey"})


class _Shape(BaseModel):
    """The envelope of one current type, as the wire holds it (see :func:`_shape`)."""

    model_config = ConfigDict(  # Envelope's, but names only by their wire aliases
        frozen=True, extra="forbid", validate_by_name=False, validate_by_alias=True, serialize_by_alias=True
    )
    TYPE: ClassVar[str]


#: Type (as bytes on the wire) → its shape; ``None`` for types the one-pass path leaves alone.
_SHAPES: dict[bytes, type[_Shape] | None] = {}


def _shape(type_: bytes) -> type[_Shape] | None:
    """The one-pass model of ``type_``: :class:`Envelope`'s fields, ``data`` of the type's model.

    Names only by their wire aliases (a v1 record's names are unknown fields, so it takes
    the upcasting path), and ``partitionkey`` accepted and dropped after. ``Envelope``'s
    only validator is ``_drop_derived``, which this replaces; should it gain another, the
    one-pass path steps aside rather than skip it.
    """
    name = type_.decode("utf-8", "replace")
    model: type[Event] | None = EVENT_TYPES.get(name)
    if model is None and len(_SHAPES) > 4 * len(EVENT_TYPES):  # unknown types: remembered up to a bound
        return None
    shape: type[_Shape] | None = None
    if model is not None and not has_upcaster(name) and _only_drops_derived():
        fields: dict[str, Any] = {n: (f.annotation, f) for n, f in Envelope.model_fields.items()}
        fields["data"] = (model, ...)
        fields["partitionkey"] = (Any, None)
        shape = create_model(f"Wire{model.__name__}", __base__=_Shape, __module__=__name__, **fields)
        shape.TYPE = name
    _SHAPES[type_] = shape
    return shape


def _only_drops_derived() -> bool:
    """Whether the one-pass model still does all ``Envelope`` does: its config and its one validator."""
    config = {k: v for k, v in Envelope.model_config.items() if k != "validate_by_name"}
    if config != {k: v for k, v in _Shape.model_config.items() if k != "validate_by_name"}:
        return False
    decorators = Envelope.__pydantic_decorators__
    validators = (decorators.field_validators, decorators.root_validators, decorators.validators)
    return set(decorators.model_validators) == {"_drop_derived"} and not any(validators)
