"""One feedback → job → PR chain is one trace across the services (issue 13, item 6).

Every service runs as its own process (``tests/support/live.py``) with
``KAIZEN_TRACING=otlp``, exporting over OTLP/HTTP to a receiver in this test process that
keeps the spans in memory (``tests/support/otlp.py``). An ``auto_pr`` task gets the
feedback that crosses its threshold; the job runs in the optimizer's worker subprocess
with the scripted LLM and opens a PR on a fake GitHub. The job's trace must start at the
API's request that posted the crossing feedback and reach the optimizer (its consumer,
the job, the worker and its LLM calls) and the PR publisher, every parent present.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.proto", reason="needs the `tracing` extra")

from tests.e2e.test_optimization_jobs import create_task, only_job, post_tickets, scripted_env, wait_terminal
from tests.e2e.test_pull_requests import git_settings
from tests.fakes.git_host_contract import started_host
from tests.fakes.scripted_llm import ScriptedLLM
from tests.support.live import live_system
from tests.support.otlp import Receiver, Span, otlp_receiver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]
SERVER, PRODUCER, CONSUMER, CLIENT = 2, 4, 5, 3  # OTLP's SpanKind numbers


def tracing_env(receiver: Receiver) -> dict[str, str]:
    return {
        "KAIZEN_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fraction of a second
    }


def job_trace(receiver: Receiver, job_id: str, timeout: float = 60) -> list[Span]:
    """The spans of the job's trace once the PR publisher's span and every parent have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        spans = receiver.spans
        runs = [s for s in spans if s.name == "run job" and s.attributes.get("kaizen.job_id") == job_id]
        if runs:
            found = [s for s in spans if s.trace_id == runs[0].trace_id]
            ids = {s.span_id for s in found}
            published = any(s.name == "publish pull request" for s in found)
            if published and all(s.parent_id is None or s.parent_id in ids for s in found):
                return found
        if time.monotonic() > deadline:
            names = Counter((s.service, s.name) for s in spans)
            raise AssertionError(f"no complete trace of job {job_id} after {timeout} s; spans seen: {names}")
        time.sleep(0.2)


def ancestors(span: Span, spans: list[Span]) -> list[Span]:
    by_id = {s.span_id: s for s in spans}
    chain = [span]
    while chain[-1].parent_id is not None:
        chain.append(by_id[chain[-1].parent_id])
    return chain


def test_one_feedback_to_job_to_pr_chain_is_one_trace_across_the_services(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with (
        otlp_receiver() as receiver,
        started_host("github") as host,
        ScriptedLLM() as llm,
        live_system(kafka_bootstrap, tmp_path, env={**scripted_env(llm), **tracing_env(receiver)}) as live,
    ):
        task_id = create_task(live, **git_settings(host))
        post_tickets(live, task_id, 25)
        final, _ = wait_terminal(live, only_job(live, task_id)["id"])
        assert final["status"] == "SUCCESS", final["error_message"]
        assert final["pr_url"]
        spans = job_trace(receiver, final["id"])

    services = {s.service for s in spans}
    assert {"kaizen-api", "kaizen-optimizer", "kaizen-pr-publisher"} <= services, services

    # One root: the API's request that posted the feedback which crossed the threshold.
    [root] = [s for s in spans if s.parent_id is None]
    assert (root.service, root.kind, root.name) == ("kaizen-api", SERVER, "POST /api/v1/feedback")

    # The PR is opened in the trace's line of descent: API → Kafka → optimizer → job → PR.
    [publish] = [s for s in spans if s.name == "publish pull request"]
    chain = [(s.service, s.name) for s in reversed(ancestors(publish, spans))]
    assert chain[0] == ("kaizen-api", "POST /api/v1/feedback")
    assert ("kaizen-api", "send " + f"{live.prefix}.tasks") in chain
    assert ("kaizen-optimizer", "run job") in chain
    assert chain[-1] == ("kaizen-pr-publisher", "publish pull request")
    kinds = {s.kind for s in spans}
    assert {SERVER, PRODUCER, CONSUMER, CLIENT} <= kinds

    # The worker subprocess joined the trace, and its LLM calls are in it with their tokens.
    [worker] = [s for s in spans if s.name == "job worker"]
    assert [s.name for s in ancestors(worker, spans)][1] == "run job"
    calls = [s for s in spans if s.attributes.get("gen_ai.request.model") == "openai/scripted"]
    assert calls and all(worker.span_id in {a.span_id for a in ancestors(c, spans)} for c in calls)
    assert any((c.attributes.get("gen_ai.usage.input_tokens") or 0) > 0 for c in calls)

    # Database calls of the read model are children of the spans that made them.
    assert any(s.attributes.get("db.system.name") == "sqlite" for s in spans)
