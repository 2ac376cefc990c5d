"""Strict CloudEvents consumers accept our records: the official SDK's Kafka binding parses them.

Each record is built exactly as ``EventLog.append_all`` sends it (key, value, headers) and
read with ``cloudevents.core.bindings.kafka`` (the SDK's spec-validating binding), then
written back by the SDK and decoded by our codec. Records in the envelope v1 layout are
what that binding refused: their extension names break the CloudEvents naming rule.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as kafka_1x
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import EVENT_TYPES, codec
from shared.events.envelope import Envelope
from tests.support.strategies import envelopes

HISTORIES = Path(__file__).resolve().parents[1] / "fixtures" / "histories"
TRACEPARENTS = st.from_regex(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", fullmatch=True)


def with_tracing(event_cls: type[Any]) -> st.SearchStrategy[Envelope]:
    """Envelopes of ``event_cls`` with the optional attributes present or absent."""
    return st.builds(
        lambda e, trace, cause: e.model_copy(update={"traceparent": trace, "causation_id": cause}),
        envelopes(event_cls),
        st.none() | TRACEPARENTS,
        st.none() | st.uuids().map(str),
    )


def record(envelope: Envelope) -> kafka.KafkaMessage:
    """The Kafka record our producer writes for ``envelope``."""
    return kafka.KafkaMessage(headers=dict(codec.headers()), key=envelope.key, value=codec.encode(envelope))


def expected_attributes(envelope: Envelope) -> dict[str, Any]:
    attributes = {
        "specversion": "1.0",
        "id": str(envelope.id),
        "type": envelope.type,
        "source": envelope.source,
        "subject": envelope.subject,
        "time": envelope.time,
        "datacontenttype": "application/json",
        "taskid": str(envelope.task_id) if envelope.task_id else None,
        "jobid": str(envelope.job_id) if envelope.job_id else None,
        "correlationid": envelope.correlation_id,
        "causationid": envelope.causation_id,
        "traceparent": envelope.traceparent,
        "partitionkey": envelope.key.decode(),
    }
    return {name: value for name, value in attributes.items() if value is not None}


def assert_same(parsed: BaseCloudEvent, envelope: Envelope) -> None:
    assert parsed.get_attributes() == expected_attributes(envelope)
    assert parsed.get_data() == envelope.data.model_dump(mode="json")


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
@settings(max_examples=15)
@given(data=st.data())
def test_every_event_type_round_trips_through_the_sdk_kafka_binding(type_: str, data: st.DataObject) -> None:
    envelope = data.draw(with_tracing(EVENT_TYPES[type_]))
    message = record(envelope)
    parsed = kafka.from_structured(message, JSONFormat())
    assert_same(parsed, envelope)
    assert_same(kafka.from_kafka(message, JSONFormat()), envelope)  # mode detection agrees
    written = kafka.to_structured(parsed, JSONFormat())
    assert written.headers == dict(codec.headers())  # the SDK writes the header as we do
    assert written.key == envelope.key.decode()
    assert codec.decode(written.value) == envelope


@settings(max_examples=50)
@given(st.one_of(*[with_tracing(cls) for cls in EVENT_TYPES.values()]))
def test_the_1x_api_binding_reads_the_same_attributes_from_the_value(envelope: Envelope) -> None:
    # ``cloudevents.v1.kafka`` is the 1.x SDK's ``cloudevents.kafka``. It does not validate
    # names, keeps ``time`` a string, and takes ``datacontenttype`` from the record's
    # content-type header (the event format's media type, in structured mode).
    message = kafka_1x.KafkaMessage(dict(codec.headers()), envelope.key, codec.encode(envelope))
    parsed = kafka_1x.from_structured(message)
    expected = expected_attributes(envelope)
    expected["time"] = json.loads(codec.encode(envelope))["time"]
    expected["datacontenttype"] = codec.CONTENT_TYPE
    assert parsed.get_attributes() == expected
    assert parsed.get_data() == envelope.data.model_dump(mode="json")


def test_every_record_of_the_v2_golden_history_is_accepted() -> None:
    for line in (HISTORIES / "two-jobs.envelope-v2.jsonl").read_text().splitlines():
        envelope = codec.decode(line.encode())
        assert_same(kafka.from_structured(record(envelope), JSONFormat()), envelope)


def test_a_v1_record_is_what_a_strict_consumer_rejected() -> None:
    lines = (HISTORIES / "two-jobs.envelope-v1.jsonl").read_text().splitlines()
    for line in lines:
        envelope = codec.decode(line.encode())
        message = kafka.KafkaMessage(headers={}, key=envelope.key, value=line.encode())
        with pytest.raises(CloudEventValidationError) as refused:
            kafka.from_structured(message, JSONFormat())
        for name in ("task_id", "job_id", "correlation_id", "causation_id"):
            assert f"Extension attribute '{name}' should only contain lowercase letters and numbers" in str(
                refused.value
            )


def test_the_content_type_header_announces_structured_mode() -> None:
    envelope = Envelope.wrap(
        EVENT_TYPES["kaizen.task.deleted.v1"](task_id=uuid.uuid4()),  # type: ignore[call-arg]
        source="api",
    )
    message = record(envelope)
    assert message.headers["content-type"].startswith(b"application/cloudevents+json")
    assert not any(name.startswith("ce_") for name in message.headers)  # not binary mode
