"""Kafka spans (messaging semantic conventions): one per record sent, one per batch processed.

Sending: each record gets a ``send <topic>`` producer span, ended when the append is
acknowledged or failed; its context goes into the record's ``traceparent`` header and
the envelope's ``traceparent`` attribute.

Processing: a batch gets one ``process <topic>`` consumer span (``process <group>`` when
it holds several topics). A batch of one record is
its child; a batch of several (whose records have as many parents) starts a new trace
with a link to each record's context, as the conventions advise for batches. A consumer
that acts on records one by one (the optimizer's trigger) opens :func:`handling` per
record, which is the record's child either way, so what it emits stays in its trace.

Sends and batches start no trace of their own: a send outside any span (a heartbeat) and
a batch whose records carry no context record nothing, so background chatter does not
bury the traces that an HTTP request (or a job) started.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from shared.events.envelope import Envelope
from shared.tracing import context

#: Links kept on a batch's span (the SDK's default limit per span).
MAX_LINKS = 128
_KAFKA = {"messaging.system": "kafka"}
#: Set while a batch of one record is processed: its span is that record's child already.
_batch_of_one: contextvars.ContextVar[bool] = contextvars.ContextVar("kaizen_batch_of_one", default=False)

Headers = list[tuple[str, bytes]]


class Received(Protocol):
    """What :func:`processing` reads of a delivery (``shared.kafka.consumer.Delivery``)."""

    @property
    def envelope(self) -> Envelope | None: ...

    @property
    def record(self) -> ConsumerRecord[bytes, bytes]: ...


def _event_attributes(envelope: Envelope) -> dict[str, Any]:
    return {
        "messaging.message.id": str(envelope.id),
        "cloudevents.event_id": str(envelope.id),
        "cloudevents.event_type": envelope.type,
        "cloudevents.event_source": envelope.source,
        **({"kaizen.job_id": str(envelope.job_id)} if envelope.job_id else {}),
        **({"kaizen.task_id": str(envelope.task_id)} if envelope.task_id else {}),
    }


@contextlib.contextmanager
def sending(targets: Sequence[tuple[str, Envelope]]) -> Iterator[list[tuple[str, Envelope, Headers]]]:
    """Producer spans for ``(topic, envelope)`` pairs; yields them with their trace context set.

    A send span's parent is the context the envelope was created in (its ``traceparent``,
    when its creator set one: the optimizer's trigger emits a batch's decisions after the
    batch, each in the context of the record that caused it), else the current span.
    """
    tracer = context.tracer()
    current = trace.get_current_span().get_span_context().is_valid
    spans: list[trace.Span] = []
    records: list[tuple[str, Envelope, Headers]] = []
    for topic, envelope in targets:
        created = context.from_traceparent(envelope.traceparent)
        if created is None and not current:
            records.append((topic, envelope, []))  # a send starts no trace (a heartbeat)
            continue
        span = tracer.start_span(
            f"send {topic}",
            context=created,
            kind=SpanKind.PRODUCER,
            attributes={
                **_KAFKA,
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": topic,
                "messaging.kafka.message.key": envelope.key.decode(errors="replace"),
                **_event_attributes(envelope),
            },
        )
        spans.append(span)
        parent = context.traceparent(trace.set_span_in_context(span))
        assert parent is not None  # a recording span always has a valid context
        traced = envelope.model_copy(update={"traceparent": parent})
        records.append((topic, traced, [(context.TRACEPARENT, parent.encode())]))
    try:
        yield records
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in spans:
            span.end()


def parent_of(delivery: Received) -> Context | None:
    envelope = delivery.envelope
    return context.from_record(delivery.record.headers, envelope.traceparent if envelope else None)


@contextlib.contextmanager
def processing(group: str, deliveries: Sequence[Received]) -> Iterator[None]:
    """The consumer span of one batch; remembers each job's latest event (its context) here."""
    first = deliveries[0].record
    parents = [parent_of(d) for d in deliveries]
    if all(p is None for p in parents):
        yield
        return
    attributes: dict[str, Any] = {
        **_KAFKA,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": group,
    }
    # A batch may hold several partitions (the projector's); name them only when it does not.
    if len({d.record.topic for d in deliveries}) == 1:
        attributes["messaging.destination.name"] = first.topic
        if len({d.record.partition for d in deliveries}) == 1:
            attributes["messaging.destination.partition.id"] = str(first.partition)
    single = len(deliveries) == 1
    if single:
        attributes["messaging.kafka.offset"] = first.offset
        if (envelope := deliveries[0].envelope) is not None:
            attributes.update(_event_attributes(envelope))
        parent, links = parents[0] or Context(), []
    else:
        attributes["messaging.batch.message_count"] = len(deliveries)
        parent = Context()
        links = [Link(trace.get_current_span(p).get_span_context()) for p in parents if p is not None]
    for d, p in zip(deliveries, parents, strict=True):
        if d.envelope is not None and d.envelope.job_id is not None and p is not None:
            context.remember(str(d.envelope.job_id), p)
    span = context.tracer().start_as_current_span(
        f"process {attributes.get('messaging.destination.name', group)}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links[:MAX_LINKS],
    )
    token = _batch_of_one.set(single)
    try:
        with span:
            yield
    finally:
        _batch_of_one.reset(token)


@contextlib.contextmanager
def handling(delivery: Received) -> Iterator[None]:
    """A span for one record of a batch, in the record's trace."""
    envelope = delivery.envelope
    parent = None if _batch_of_one.get() else parent_of(delivery)
    if parent is None and not _batch_of_one.get():
        yield  # a record without context starts no trace
        return
    name = f"handle {envelope.type}" if envelope is not None else "handle record"
    attributes = {"messaging.kafka.offset": delivery.record.offset}
    if envelope is not None:
        attributes.update(_event_attributes(envelope))
    with context.tracer().start_as_current_span(name, context=parent, attributes=attributes):
        yield
