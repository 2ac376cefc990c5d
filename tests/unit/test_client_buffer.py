"""The client's buffer, sender and job waiting, against ``httpx.MockTransport`` (logic only;
the live proof is ``tests/e2e/test_python_client.py``)."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "clients" / "python"))

from kaizen_client import Kaizen, NotFound, ValidationFailed
from kaizen_client._wire import SseParser
from kaizen_client.retry import Backoff

TASK = str(uuid.uuid4())


class Server:
    """A scripted batch endpoint: answers ``statuses`` in turn, then 200; records every request."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            status = self.statuses.pop(0) if self.statuses else 200
        if status != 200:
            problem = {"type": "urn:x", "title": "t", "status": status, "detail": "d", "instance": "/"}
            return httpx.Response(status, json=problem, headers=self.headers)
        items = json.loads(request.content)["items"]
        return httpx.Response(200, json={"accepted": len(items), "refused": 0, "results": []})

    def keys(self) -> list[str]:
        return [r.headers["Idempotency-Key"] for r in self.requests]


def _client(server: Any, **options: Any) -> Kaizen:
    values: dict[str, Any] = {"flush_interval": 0.01, "exit_timeout": 1.0, **options}
    return Kaizen("http://kaizen.test", "kaizen_" + "0" * 32, transport=httpx.MockTransport(server), **values)


def test_feedback_is_shipped_in_batches_and_flush_waits_for_delivery() -> None:
    server = Server()
    with _client(server, batch_size=10) as client:
        for n in range(25):
            assert client.feedback(TASK, {"q": n}, "a", 0.5) is True
        assert client.flush(5)
        assert client.stats.sent == 25 and client.stats.queued == 0
    sizes = [len(json.loads(r.content)["items"]) for r in server.requests]
    assert sum(sizes) == 25 and max(sizes) <= 10
    assert all(r.url.path == "/api/v1/feedback/batch" for r in server.requests)


def test_every_retry_of_a_batch_carries_the_same_idempotency_key() -> None:
    server = Server(503, 504, headers={"Retry-After": "0"})
    with _client(server) as client:
        client.feedback(TASK, {"q": 1}, "a", 0.5)
        assert client.flush(5)
        assert (client.stats.sent, client.stats.retries) == (1, 2)
    assert len(set(server.keys())) == 1 and len(server.keys()) == 3


def test_a_full_buffer_drops_and_counts_without_raising() -> None:
    gate = threading.Event()

    def stuck(request: httpx.Request) -> httpx.Response:
        gate.wait(5)
        return httpx.Response(200, json={"accepted": 1, "refused": 0, "results": []})

    client = _client(stuck, buffer_size=5, batch_size=1)
    results = [client.feedback(TASK, {"q": n}, "a", 0.5) for n in range(50)]
    assert results.count(False) >= 40
    assert client.stats.dropped == results.count(False)
    gate.set()
    client.close(5)


def test_an_unreachable_server_drops_the_batch_after_retry_for_and_counts_it() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _client(down, retry_for=0.3) as client:
        client.feedback(TASK, {"q": 1}, "a", 0.5)
        assert client.flush(5)
        stats = client.stats
    assert stats.dropped == 1 and stats.sent == 0


def test_a_batch_the_server_refuses_for_good_is_counted_as_failed() -> None:
    server = Server(422)
    with _client(server) as client:
        client.feedback(TASK, {"q": 1}, "a", 0.5)
        client.flush(5)
        assert (client.stats.failed, client.stats.retries) == (1, 0)


def test_feedback_never_raises_into_the_caller() -> None:
    with _client(Server()) as client:
        assert client.feedback(TASK, {"not json": object()}, "a", 0.5) is True  # encoded leniently
        assert client.feedback(None, None, None, None) in (True, False)  # type: ignore[arg-type]


def test_retry_after_wins_over_the_backoff() -> None:
    assert Backoff().delay(3, retry_after=2.0) == 2.0
    assert 0 <= Backoff(base=1, cap=4).delay(10) <= 4


def test_errors_are_typed_and_carry_the_problem() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        problem = {
            "type": "urn:kaizen:problem:not-found",
            "title": "Not Found",
            "status": 404,
            "detail": "job x not found",
            "instance": request.url.path,
        }
        return httpx.Response(404, json=problem, headers={"content-type": "application/problem+json"})

    with _client(answer) as client, pytest.raises(NotFound) as raised:
        client.jobs.get(uuid.uuid4())
    assert raised.value.status == 404 and raised.value.detail == "job x not found"
    assert raised.value.type == "urn:kaizen:problem:not-found"
    assert not issubclass(NotFound, ValidationFailed)


def _job(status: str, step: str | None = None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "task_id": TASK,
        "prompt_version_id": None,
        "status": status,
        "triggered_by": "api_on_demand",
        "feedback_count": 1,
        "pr_url": None,
        "error_message": None,
        "job_metadata": {},
        "progress_step": step,
        "started_at": None,
        "completed_at": None,
        "created_at": "2024-01-15T10:30:00Z",
    }


def test_jobs_wait_falls_back_to_polling_when_the_stream_fails() -> None:
    states = iter(["PENDING", "RUNNING", "EVALUATING", "SUCCESS"])
    current = {"status": "PENDING"}

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stream"):
            return httpx.Response(502, text="a proxy that does not stream")
        current["status"] = next(states, "SUCCESS")
        return httpx.Response(200, json=_job(current["status"]))

    seen: list[str] = []
    with _client(api) as client:
        job = client.jobs.wait(uuid.uuid4(), on_progress=lambda j: seen.append(j.status), poll_interval=0.01)
    assert job.status == "SUCCESS" and seen[-1] == "SUCCESS" and len(seen) >= 2


def test_the_sse_parser_reads_events_and_skips_comments() -> None:
    parser = SseParser()
    lines = [": ping", "event: kaizen.job.started.v1", "id: 7", 'data: {"a":', "data: 1}", ""]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert len(events) == 1
    assert (events[0].event, events[0].id, events[0].data) == ("kaizen.job.started.v1", "7", '{"a":\n1}')
