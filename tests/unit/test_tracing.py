"""Trace propagation helpers (``shared.tracing``) against the SDK's in-memory exporter.

The whole chain across processes is proven in ``tests/integration/test_tracing_live.py``;
here each hand-off is checked alone: record headers and the envelope's ``traceparent``,
batches of one and of many, a job's remembered parent, the worker subprocess's
environment, LLM, database and HTTP spans, and the setting.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import text

pytest.importorskip("opentelemetry.sdk", reason="needs the `tracing` extra")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.optimizer.subprocess_runner import _worker_env
from shared import tracing
from shared.events import codec
from shared.events.envelope import Envelope
from shared.kafka.consumer import Delivery
from shared.readmodel.db import make_engine
from shared.readmodel.transactions import Transactions
from shared.settings import Settings
from shared.tracing import context, http, messaging, mode
from tests.support.events import feedback

pytestmark = pytest.mark.timeout(60)

_EXPORTER = InMemorySpanExporter()
_provider_installed = False


class _WhileOn(SimpleSpanProcessor):
    """Keeps spans only while a test of this module switched tracing on.

    The global provider stays installed for the rest of the test run (it can be set only
    once), and FastAPI records spans whenever one is: later tests must not fill memory.
    """

    def on_end(self, span: ReadableSpan) -> None:
        if tracing.enabled():
            super().on_end(span)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, with every finished span kept in memory."""
    global _provider_installed
    if not _provider_installed:  # the global provider can be set once per process
        provider = TracerProvider()
        provider.add_span_processor(_WhileOn(_EXPORTER))
        trace.set_tracer_provider(provider)
        _provider_installed = True
    _EXPORTER.clear()
    tracing.switch_on()
    try:
        yield _EXPORTER
    finally:
        tracing.switch_off()
        _EXPORTER.clear()


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def w3c(span: Any) -> str:
    """The ``traceparent`` naming ``span`` (a span or a span context)."""
    ctx = span.get_span_context() if hasattr(span, "get_span_context") else span
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def record(envelope: Envelope, headers: list[tuple[str, bytes]], offset: int = 7) -> Delivery:
    value = codec.encode(envelope)
    consumed = ConsumerRecord(
        topic="t.tasks",
        partition=2,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=envelope.key,
        value=value,
        checksum=None,
        serialized_key_size=len(envelope.key),
        serialized_value_size=len(value),
        headers=headers,
    )
    return Delivery("t.tasks", 2, offset, codec.decode(value), consumed)


def sent(envelope: Envelope) -> tuple[Envelope, list[tuple[str, bytes]]]:
    with messaging.sending([("t.tasks", envelope)]) as [(_topic, traced, headers)]:
        return traced, headers


def test_a_sent_record_carries_its_send_spans_context_in_a_header_and_in_the_envelope(
    spans: InMemorySpanExporter,
) -> None:
    [envelope] = feedback(uuid.uuid4(), 1)
    with trace.get_tracer("test").start_as_current_span("request") as request:
        traced, headers = sent(envelope)

    send = named(spans, "send t.tasks")
    assert send.kind is SpanKind.PRODUCER and parent_id(send) == request.get_span_context().span_id
    assert send.attributes is not None and send.attributes["messaging.system"] == "kafka"
    assert send.attributes["cloudevents.event_id"] == str(envelope.id)
    expected = w3c(send.context)
    assert headers == [("traceparent", expected.encode())]
    assert traced.traceparent == expected
    assert codec.decode(codec.encode(traced)).traceparent == expected  # it travels in the record


def test_a_send_outside_any_span_records_nothing_and_adds_no_header(spans: InMemorySpanExporter) -> None:
    [envelope] = feedback(uuid.uuid4(), 1)

    traced, headers = sent(envelope)

    assert headers == [] and traced.traceparent is None and spans.get_finished_spans() == ()


def test_a_batch_of_one_is_processed_as_the_records_child(spans: InMemorySpanExporter) -> None:
    [envelope] = feedback(uuid.uuid4(), 1)
    with trace.get_tracer("test").start_as_current_span("request"):
        traced, headers = sent(envelope)
    delivery = record(traced, headers)

    with messaging.processing("group", [delivery]), tracing.handling(delivery):
        pass

    send, process = named(spans, "send t.tasks"), named(spans, "process t.tasks")
    handle = named(spans, f"handle {envelope.type}")
    assert process.kind is SpanKind.CONSUMER and parent_id(process) == send.context.span_id
    assert parent_id(handle) == process.context.span_id
    assert process.attributes is not None and process.attributes["messaging.kafka.offset"] == 7
    assert {s.context.trace_id for s in (send, process, handle)} == {send.context.trace_id}


def test_a_batch_of_many_links_every_record_and_each_record_is_handled_in_its_own_trace(
    spans: InMemorySpanExporter,
) -> None:
    deliveries = []
    for i, envelope in enumerate(feedback(uuid.uuid4(), 3)):
        with trace.get_tracer("test").start_as_current_span(f"request {i}"):
            deliveries.append(record(*sent(envelope), offset=i))

    with messaging.processing("group", deliveries):
        for delivery in deliveries:
            with tracing.handling(delivery):
                pass

    process = named(spans, "process t.tasks")
    sends = [s for s in spans.get_finished_spans() if s.name == "send t.tasks"]
    assert process.parent is None
    assert [link.context.span_id for link in process.links] == [s.context.span_id for s in sends]
    handles = [s for s in spans.get_finished_spans() if s.name.startswith("handle ")]
    assert [parent_id(h) for h in handles] == [s.context.span_id for s in sends]
    assert [h.context.trace_id for h in handles] == [s.context.trace_id for s in sends]


def test_without_a_header_the_envelopes_traceparent_is_the_parent(spans: InMemorySpanExporter) -> None:
    [envelope] = feedback(uuid.uuid4(), 1)
    with trace.get_tracer("test").start_as_current_span("request"):
        traced, _headers = sent(envelope)

    with messaging.processing("group", [record(traced, [])]):
        pass

    assert parent_id(named(spans, "process t.tasks")) == named(spans, "send t.tasks").context.span_id


def test_a_batch_whose_records_carry_no_context_records_nothing(spans: InMemorySpanExporter) -> None:
    deliveries = [record(e, [], offset=i) for i, e in enumerate(feedback(uuid.uuid4(), 2))]

    with messaging.processing("group", deliveries):
        for delivery in deliveries:
            with tracing.handling(delivery):
                pass

    assert spans.get_finished_spans() == ()


def test_an_envelope_created_in_a_records_context_is_sent_in_that_trace(spans: InMemorySpanExporter) -> None:
    [envelope] = feedback(uuid.uuid4(), 1)
    with trace.get_tracer("test").start_as_current_span("cause") as cause:
        created = tracing.current_traceparent()
    decision = envelope.model_copy(update={"traceparent": created})

    with trace.get_tracer("test").start_as_current_span("unrelated batch"):
        sent(decision)

    assert parent_id(named(spans, "send t.tasks")) == cause.get_span_context().span_id


def test_a_job_runs_as_the_child_of_what_requested_it_or_else_in_a_trace_of_its_own(
    spans: InMemorySpanExporter,
) -> None:
    job_id, unknown = uuid.uuid4(), uuid.uuid4()
    with trace.get_tracer("test").start_as_current_span("threshold crossed") as cause:
        tracing.remember(job_id)

    with tracing.resumed(job_id, "run job"):
        pass
    with tracing.resumed(unknown, "run unknown job"):
        pass

    run = named(spans, "run job")
    assert parent_id(run) == cause.get_span_context().span_id
    assert run.attributes is not None and run.attributes["kaizen.job_id"] == str(job_id)
    assert named(spans, "run unknown job").parent is None


def test_a_context_captured_in_a_span_is_remembered_after_the_span_ended(spans: InMemorySpanExporter) -> None:
    job_id = uuid.uuid4()
    with trace.get_tracer("test").start_as_current_span("threshold crossed") as cause:
        captured = tracing.capture()
    with trace.get_tracer("test").start_as_current_span("batch kept"):
        tracing.remember(job_id, captured)  # the trigger announces only the jobs of kept records

    with tracing.resumed(job_id, "run job"):
        pass

    assert parent_id(named(spans, "run job")) == cause.get_span_context().span_id


def test_the_worker_subprocess_gets_the_jobs_context_and_the_tracing_setting(
    spans: InMemorySpanExporter,
) -> None:
    parent_env = {
        "KAIZEN_TRACING": "otlp",
        "KAIZEN_HOME": "/x",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
    }
    with trace.get_tracer("test").start_as_current_span("run job") as job:
        env = _worker_env(parent_env)

    assert env["KAIZEN_TRACING"] == "otlp" and "KAIZEN_HOME" not in env
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://c:4318"
    assert env["TRACEPARENT"] == w3c(job)

    # The worker's side (``services.optimizer.worker``): its span continues TRACEPARENT, and
    # LLM calls from library threads without a span of their own join it.
    def call() -> None:
        with tracing.llm_call("openai/scripted", "http://127.0.0.1:8765/v1") as llm:
            llm.usage(12, 3)

    with tracing.from_env("job worker", env):
        thread = threading.Thread(target=call)
        thread.start()
        thread.join()

    worker, chat = named(spans, "job worker"), named(spans, "chat openai/scripted")
    assert parent_id(worker) == job.get_span_context().span_id
    assert parent_id(chat) == worker.context.span_id and chat.kind is SpanKind.CLIENT
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.request.model"] == "openai/scripted"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 12
    assert chat.attributes["gen_ai.usage.output_tokens"] == 3
    assert chat.attributes["server.port"] == 8765


def test_usage_reported_inside_a_call_lands_on_its_span(spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("job"), tracing.llm_call("openai/gpt-4o-mini"):
        tracing.llm_usage(100, 20)  # what MeteredLM.update_history does

    chat = named(spans, "chat openai/gpt-4o-mini")
    assert chat.attributes is not None and chat.attributes["gen_ai.usage.input_tokens"] == 100


async def test_database_statements_are_children_of_the_callers_span_and_never_traces_of_their_own(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}")
    tracing.instrument_engine(engine)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE jobs (id TEXT)"))
            with trace.get_tracer("test").start_as_current_span("batch") as batch:
                await conn.execute(text("SELECT id FROM jobs"))
    finally:
        await engine.dispose()

    [query] = [s for s in spans.get_finished_spans() if s.name != "batch"]
    assert query.name == "SELECT jobs" and query.kind is SpanKind.CLIENT
    assert parent_id(query) == batch.get_span_context().span_id
    assert query.attributes is not None and query.attributes["db.system.name"] == "sqlite"
    assert query.attributes["db.query.text"] == "SELECT id FROM jobs"


async def test_a_batch_transaction_run_in_the_worker_thread_is_traced_under_the_callers_span(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}")
    transactions = Transactions(engine)
    try:
        await transactions.run(lambda conn: conn.execute(text("CREATE TABLE jobs (id TEXT)")))
        with trace.get_tracer("test").start_as_current_span("batch") as batch:
            await transactions.run(lambda conn: conn.execute(text("SELECT id FROM jobs")))
    finally:
        await transactions.dispose()
        await engine.dispose()

    [query] = [s for s in spans.get_finished_spans() if s.name == "SELECT jobs"]
    assert parent_id(query) == batch.get_span_context().span_id
    assert query.attributes is not None and query.attributes["db.system.name"] == "sqlite"


async def test_an_http_request_is_a_server_span_named_by_its_route_continuing_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, Any]:
        with trace.get_tracer("test").start_as_current_span("inside"):
            return {"id": item_id}

    http.install(app)  # what create_app does with tracing on
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        answer = await client.get("/items/42", headers={"traceparent": caller})

    assert answer.status_code == 200
    [server] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "GET /items/{item_id}"
    assert server.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert parent_id(server) == 0xB7AD6B7169203331
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.route"] == "/items/{item_id}"
    inside = named(spans, "inside")
    assert inside.context.trace_id == server.context.trace_id


async def test_the_fallback_middleware_records_the_same_server_span(spans: InMemorySpanExporter) -> None:
    app = FastAPI()

    @app.post("/items/{item_id}")
    async def item(item_id: str) -> dict[str, Any]:
        return {"id": item_id}

    fallback = http.TraceRequests(app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fallback), base_url="http://api"
    ) as client:
        answer = await client.post("/items/42")

    assert answer.status_code == 200
    servers = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    ours = [s for s in servers if s.instrumentation_scope and s.instrumentation_scope.name == "kaizen"]
    assert [s.name for s in ours] == ["POST /items/{item_id}"]
    assert ours[0].attributes is not None and ours[0].attributes["http.response.status_code"] == 200


def test_tracing_is_off_by_default_and_a_bad_value_is_refused() -> None:
    assert Settings().tracing == "off"
    assert Settings(tracing="console").tracing == "console"  # the extra is installed here
    with pytest.raises(ValidationError, match="tracing"):
        Settings(tracing="jaeger")  # type: ignore[arg-type]


def test_tracing_requested_without_the_extra_refuses_to_start_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = mode.importlib.util.find_spec

    def without_sdk(name: str, package: str | None = None) -> Any:
        return None if name.startswith("opentelemetry.sdk") else real_find_spec(name, package)

    monkeypatch.setattr(mode.importlib.util, "find_spec", without_sdk)

    with pytest.raises(ValidationError) as refused:
        Settings(tracing="otlp")
    message = str(refused.value)
    assert "tracing" in message and "opentelemetry.sdk is not installed" in message
    assert "kaizen[tracing]" in message and "KAIZEN_TRACING=off" in message


def test_with_tracing_off_no_service_imports_the_sdk_or_adds_a_middleware(tmp_path: Path) -> None:
    script = f"""
import sys
from pathlib import Path
import services.optimizer.bootstrap, services.pr_publisher.bootstrap, services.projector.bootstrap
import services.optimizer.worker
from services.api.main import create_app
from shared.settings import Settings
app = create_app(Settings(home=Path({str(tmp_path)!r})))

# An append takes the untraced path: no span, no trace header, no OpenTelemetry import.
import asyncio, uuid
from shared.events.envelope import Envelope
from shared.events.keys import ApiKeyRevoked
from shared.events.topics import Topics
from shared.kafka.producer import EventLog
class Acked:
    topic, partition, offset = "t.keys", 0, 0
class Producer:
    async def send(self, topic, value, key=None, headers=None):
        assert not any(name == "traceparent" for name, _ in headers), headers
        future = asyncio.get_running_loop().create_future()
        future.set_result(Acked())
        return future
log = EventLog("unused:9092", Topics("t"), client_id="test")
log._producer = Producer()
asyncio.run(log.append_all([Envelope.wrap(ApiKeyRevoked(key_id=uuid.uuid4()), source="api")]))

loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "shared.tracing.")))
assert loaded == ["shared.tracing.mode"], loaded
assert not any(getattr(m.cls, "__name__", "") == "TraceRequests" for m in app.user_middleware)
print("clean")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIZEN_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr[-3000:]


def test_a_remembered_context_is_kept_for_a_bounded_number_of_jobs(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context, "REMEMBERED_JOBS", 2)
    with trace.get_tracer("test").start_as_current_span("cause"):
        for job in ("a", "b", "c"):
            tracing.remember(job)

    assert context.recall("a") is None and context.recall("c") is not None


async def test_the_consumer_span_of_a_record_is_current_while_the_handler_runs(
    spans: InMemorySpanExporter,
) -> None:
    # The handler's own work (and the events it appends) happens inside the batch's span.
    [envelope] = feedback(uuid.uuid4(), 1)
    with trace.get_tracer("test").start_as_current_span("request"):
        delivery = record(*sent(envelope))
    seen: list[int] = []

    async def handler() -> None:
        seen.append(trace.get_current_span().get_span_context().span_id)

    with messaging.processing("group", [delivery]):
        await asyncio.create_task(handler())

    assert seen == [named(spans, "process t.tasks").context.span_id]


@pytest.mark.parametrize(
    ("otel_service_name", "expected"), [(None, "kaizen-projector"), ("projector-eu-1", "projector-eu-1")]
)
def test_the_console_exporter_prints_spans_named_by_service_unless_otel_service_name_says_otherwise(
    otel_service_name: str | None, expected: str
) -> None:
    script = """
from shared import tracing
tracing.setup("console", "kaizen-projector")
with tracing.resumed("job-1", "run job"):
    pass
tracing.shutdown()
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIZEN_", "OTEL_"))}
    if otel_service_name:
        env["OTEL_SERVICE_NAME"] = otel_service_name
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"name": "run job"' in done.stdout and '"kaizen.job_id": "job-1"' in done.stdout
    assert f'"service.name": "{expected}"' in done.stdout
