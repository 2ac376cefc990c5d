"""The codec's one-pass decode gives exactly what the general path gives, or leaves the record to it.

``codec.decode`` validates the common record (envelope v2, a type without upcaster) in one
pydantic pass from bytes, and hands everything else to the general path (``json.loads``,
upcasters, two validations). These properties hold the two to the same answers: the same
``Envelope`` field for field, the same fields set, the same bytes re-encoded, and for a
record either path refuses, the same ``PoisonRecord`` reason.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import EVENT_TYPES, codec
from shared.events.envelope import Envelope
from shared.events.upcasters import ENVELOPE_V1_NAMES
from tests.support.strategies import envelopes, json_values

ALL_ENVELOPES = st.one_of(*[envelopes(cls) for cls in EVENT_TYPES.values()])
HISTORIES = Path(__file__).parents[1] / "fixtures" / "histories"


def _same(fast: Envelope, general: Envelope) -> None:
    assert type(fast) is Envelope
    assert type(fast.data) is type(general.data)
    assert fast == general
    assert list(fast.__dict__) == list(general.__dict__)
    assert fast.model_fields_set == general.model_fields_set
    assert fast.data.model_fields_set == general.data.model_fields_set
    assert codec.encode(fast) == codec.encode(general)


def _outcome(decode: Any, value: bytes) -> Envelope | str:
    try:
        envelope: Envelope = decode(value)
    except codec.PoisonRecord as exc:
        return f"poison: {exc.reason}"
    return envelope


def _agree(value: bytes) -> None:
    fast, general = _outcome(codec.decode, value), _outcome(codec._decode_general, value)
    if isinstance(fast, str) or isinstance(general, str):
        assert fast == general
    else:
        _same(fast, general)


@settings(max_examples=400)
@given(ALL_ENVELOPES)
def test_every_event_type_takes_the_one_pass_path_and_decodes_as_the_general_path_does(
    envelope: Envelope,
) -> None:
    value = codec.encode(envelope)
    fast = codec._decode_current(value)
    assert fast is not None, f"{envelope.type} left the one-pass path"
    _same(fast, codec._decode_general(value))


def _mutations(draw: st.DrawFn, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with one of the changes a damaged, older or hand-written record has."""
    kind = draw(st.sampled_from(["drop", "set", "set_data", "v1_name", "reorder", "nested_type", "extra"]))
    raw = dict(raw)
    if kind == "drop":
        raw.pop(draw(st.sampled_from(sorted(raw))))
    elif kind == "set":
        raw[draw(st.sampled_from(sorted(raw)))] = draw(json_values)
    elif kind == "set_data" and isinstance(raw.get("data"), dict) and raw["data"]:
        data = dict(raw["data"])
        data[draw(st.sampled_from(sorted(data)))] = draw(json_values)
        raw["data"] = data
    elif kind == "v1_name":
        raw[draw(st.sampled_from(sorted(ENVELOPE_V1_NAMES)))] = draw(st.none() | st.uuids().map(str))
    elif kind == "reorder":
        raw = dict(sorted(raw.items(), reverse=draw(st.booleans())))
    elif kind == "nested_type":
        other = draw(st.sampled_from(sorted(EVENT_TYPES)))
        raw = {"aaa": {"type": other}, **raw}
    else:
        raw[draw(st.text(max_size=8))] = draw(json_values)
    return raw


@st.composite
def damaged_records(draw: st.DrawFn) -> bytes:
    raw = json.loads(codec.encode(draw(ALL_ENVELOPES)))
    for _ in range(draw(st.integers(1, 3))):
        raw = _mutations(draw, raw)
    return json.dumps(raw, separators=(",", ":")).encode()


@settings(max_examples=600)
@given(damaged_records())
def test_a_damaged_record_decodes_or_is_refused_exactly_as_the_general_path_does(value: bytes) -> None:
    _agree(value)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_with_the_general_paths_reason(value: bytes) -> None:
    _agree(value)


@pytest.mark.parametrize(
    "value",
    [
        b'{"type":"kaizen.task.deleted.v1","data":{"task_id":"nope"}}',
        b'\xef\xbb\xbf{"type":"kaizen.task.deleted.v1"}',
        b'{"type":"kaizen.task.deleted.v1","source":"\\ud800"}',
        b'{"type":"kaizen.task\\u002edeleted.v1"}',
    ],
)
def test_records_the_one_pass_path_cannot_read_get_the_general_paths_answer(value: bytes) -> None:
    assert codec._decode_current(value) is None
    _agree(value)


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.jsonl")), ids=lambda p: p.name)
def test_every_golden_record_decodes_as_the_general_path_decodes_it(path: Path) -> None:
    for line in path.read_bytes().splitlines():
        if line.strip():
            _agree(line)


def test_a_type_mark_inside_the_data_does_not_choose_the_model() -> None:
    from shared.events.feedback import FeedbackRecorded

    event = FeedbackRecorded(
        feedback_id=uuid.uuid4(),
        task_id=uuid.uuid4(),
        inputs={"q": "?"},
        output="!",
        score=1.0,
        source="sdk",
        metadata={"type": "kaizen.task.deleted.v1"},
    )
    raw = json.loads(codec.encode(Envelope.wrap(event, source="tests")))
    data_first = json.dumps({"data": raw.pop("data"), **raw}, separators=(",", ":")).encode()
    assert data_first.find(b'"type":"kaizen.task.deleted.v1"') < data_first.find(b'"type":"kaizen.feedback')
    assert codec._decode_current(data_first) is None
    _agree(data_first)
    assert type(codec.decode(data_first).data) is FeedbackRecorded


def test_a_repeated_type_attribute_decodes_as_its_last_value_says() -> None:
    from shared.events.jobs import JobCancelRequested

    event = JobCancelRequested(task_id=uuid.uuid4(), job_id=uuid.uuid4())
    value = codec.encode(Envelope.wrap(event, source="tests"))
    # JSON's last repeated name wins, in both parsers; the first is where the type is looked for.
    repeated = value.replace(b'"type":', b'"type":"kaizen.job.succeeded.v1","type":', 1)
    _agree(repeated)
    assert type(codec.decode(repeated).data) is JobCancelRequested


def test_an_envelope_v1_record_is_left_to_the_upcasting_path() -> None:
    v1 = next(p for p in HISTORIES.glob("*.jsonl") if "v1" in p.name)
    for line in v1.read_bytes().splitlines():
        if line.strip():
            assert codec._decode_current(line) is None


def test_a_type_given_an_upcaster_takes_the_upcasting_path_even_after_it_was_decoded() -> None:
    from shared.events.jobs import JobCancelRequested
    from shared.events.prs import PrRetryRequested
    from shared.events.upcasters import _UPCASTERS, upcaster

    event = JobCancelRequested(task_id=uuid.uuid4(), job_id=uuid.uuid4())
    value = codec.encode(Envelope.wrap(event, source="tests"))
    assert type(codec.decode(value).data) is JobCancelRequested  # its one-pass model is made now
    upcaster(JobCancelRequested.TYPE)(lambda data: (PrRetryRequested.TYPE, data))
    try:
        assert codec._decode_current(value) is None
        assert type(codec.decode(value).data) is PrRetryRequested
    finally:
        del _UPCASTERS[JobCancelRequested.TYPE]
