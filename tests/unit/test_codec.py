"""The codec: every event decodes to what was encoded; garbage is refused with a reason."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import EVENT_TYPES, codec
from shared.events.envelope import Envelope
from tests.support.strategies import envelopes

ALL_ENVELOPES = st.one_of(*[envelopes(cls) for cls in EVENT_TYPES.values()])


@settings(max_examples=300)
@given(ALL_ENVELOPES)
def test_decode_of_encode_is_identity(envelope: Envelope) -> None:
    assert codec.decode(codec.encode(envelope)) == envelope


@given(ALL_ENVELOPES)
def test_encoding_is_deterministic(envelope: Envelope) -> None:
    assert codec.encode(codec.decode(codec.encode(envelope))) == codec.encode(envelope)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "tombstone"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "expected an object"),
        (b'{"type": 3, "data": {}}', "lacks a string `type`"),
        (b'{"type": "kaizen.unknown.v9", "data": {}}', "unknown event type"),
        (b'{"type": "kaizen.task.deleted.v1", "data": {"task_id": "nope"}}', "task_id"),
    ],
)
def test_garbage_is_refused_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(codec.PoisonRecord, match=reason):
        codec.decode(raw)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_poison(raw: bytes) -> None:
    with contextlib.suppress(codec.PoisonRecord):
        codec.decode(raw)
