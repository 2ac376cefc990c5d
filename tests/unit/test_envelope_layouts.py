"""Envelope v2 is what we write; envelope v1 records of every event type still decode."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import EVENT_TYPES, codec
from shared.events.envelope import Envelope
from shared.events.upcasters import is_envelope_v1
from tests.support import events as ev
from tests.support.legacy_records import v1_value
from tests.support.strategies import envelopes

ALL_ENVELOPES = st.one_of(*[envelopes(cls) for cls in EVENT_TYPES.values()])


@settings(max_examples=200)
@given(ALL_ENVELOPES)
def test_a_v1_record_of_any_type_decodes_to_the_same_envelope(envelope: Envelope) -> None:
    old = v1_value(envelope)
    assert is_envelope_v1(json.loads(old))
    assert codec.decode(old) == envelope


@settings(max_examples=200)
@given(ALL_ENVELOPES)
def test_v2_attribute_names_are_lower_case_letters_and_digits_and_never_null(envelope: Envelope) -> None:
    record = json.loads(codec.encode(envelope))
    attributes = {k: v for k, v in record.items() if k != "data"}
    assert all(re.fullmatch(r"[a-z0-9]+", name) for name in attributes)
    assert None not in attributes.values()
    assert not is_envelope_v1(record)
    assert record["partitionkey"].encode() == envelope.key


def test_python_code_keeps_the_snake_case_attribute_names() -> None:
    task = ev.task_created()
    assert task.task_id is not None
    envelope = codec.decode(v1_value(ev.job_lifecycle(task.task_id)[1]))
    assert envelope.task_id == task.task_id and envelope.job_id is not None
    assert envelope.correlation_id == str(envelope.job_id) and envelope.causation_id is not None
    # Wire names validate too, and ``partitionkey`` is derived, never stored.
    assert Envelope.model_validate({**envelope.model_dump(), "data": envelope.data}) == envelope
