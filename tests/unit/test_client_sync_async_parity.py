"""``Kaizen`` and ``AsyncKaizen`` send the same request for every method and read answers alike.

Both clients run one description of each endpoint (``kaizen_client._calls``) through their
own ``httpx`` client; these tests catch the two drifting apart, against ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "clients" / "python"))

from kaizen_client import AsyncKaizen, Kaizen, NotFound, TransportError
from kaizen_client import models as m

TASK = str(uuid.uuid4())
OTHER = str(uuid.uuid4())
ITEM = m.FeedbackCreate(task_id=uuid.UUID(TASK), inputs={"q": 1}, output="a", score=0.5)

#: Every endpoint method of both clients: (attribute path, positional args, keyword args).
METHODS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("health", (), {}),
    ("livez", (), {}),
    ("readyz", (), {}),
    ("send_feedback", (ITEM,), {"idempotency_key": "k1"}),
    ("send_feedback", (ITEM,), {}),
    ("send_feedback_batch", ([ITEM, ITEM],), {"idempotency_key": "k2"}),
    ("list_feedback", (TASK,), {"limit": 5, "offset": 2}),
    ("list_feedback", (), {}),
    ("upload_seeds", (TASK, b'{"ticket": "t"}\n'), {"idempotency_key": "k3"}),
    ("optimize", (TASK,), {}),
    ("estimate", (TASK,), {}),
    ("tasks.create", ("route",), {"schema_json": ["ticket"], "feedback_threshold": 7}),
    ("tasks.list", (), {"limit": 3, "cursor": "abc"}),
    ("tasks.list", (), {}),
    ("tasks.get", (TASK,), {}),
    ("tasks.update", (TASK,), {"name": "renamed"}),
    ("tasks.delete", (TASK,), {}),
    ("keys.bootstrap", ("first",), {"token": "tok"}),
    ("keys.bootstrap", ("first",), {}),
    ("keys.create", ("ci", "ingest"), {}),
    ("keys.list", (), {}),
    ("keys.revoke", (OTHER,), {}),
    (
        "webhooks.create",
        ("https://hooks.example.com/k",),
        {"types": ["kaizen.job.succeeded.v1"], "task_id": TASK},
    ),
    ("webhooks.create", ("https://hooks.example.com/k",), {}),
    ("webhooks.list", (), {}),
    ("webhooks.get", (OTHER,), {}),
    ("webhooks.delete", (OTHER,), {}),
    ("webhooks.deliveries", (OTHER,), {"limit": 10, "offset": 1}),
    ("prompts.get", (TASK,), {}),
    ("prompts.versions", (TASK,), {"limit": 2, "offset": 1}),
    ("prompts.register", (TASK, "Route each ticket."), {"activate": False}),
    ("prompts.activate", (TASK, OTHER), {}),
    ("jobs.list", (TASK,), {"limit": 4, "offset": 8}),
    ("jobs.get", (OTHER,), {}),
    ("jobs.retry_pr", (OTHER,), {}),
    ("jobs.cancel", (OTHER,), {}),
    ("jobs.events", (OTHER,), {}),
]


def _wire(request: httpx.Request) -> dict[str, Any]:
    """What went over the wire, with a multipart boundary (random per request) made constant."""
    content, headers = request.read(), dict(request.headers)
    boundary = re.search(r"boundary=([\w-]+)", headers.get("content-type", ""))
    if boundary:
        content = content.replace(boundary.group(1).encode(), b"B")
        headers["content-type"] = headers["content-type"].replace(boundary.group(1), "B")
    return {"method": request.method, "url": str(request.url), "headers": headers, "content": content}


def _method(client: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        client = getattr(client, part)
    return client


def _clients(handler: Any) -> tuple[Kaizen, AsyncKaizen]:
    args = ("http://kaizen.test", "kaizen_" + "0" * 32)
    transport = httpx.MockTransport(handler)
    return Kaizen(*args, transport=transport), AsyncKaizen(*args, transport=transport)


@pytest.mark.parametrize(("dotted", "args", "kwargs"), METHODS, ids=[m[0] for m in METHODS])
def test_both_clients_send_the_same_request_for_each_method(
    dotted: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    seen: list[httpx.Request] = []

    def no_content(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    sync, aio = _clients(no_content)
    assert _method(sync, dotted)(*args, **kwargs) is None
    assert asyncio.run(_method(aio, dotted)(*args, **kwargs)) is None
    sync.close(1)
    asyncio.run(aio.aclose(1))
    assert len(seen) == 2
    assert _wire(seen[0]) == _wire(seen[1])


def _job(status: str) -> dict[str, Any]:
    return {
        "id": OTHER,
        "task_id": TASK,
        "prompt_version_id": None,
        "status": status,
        "triggered_by": "api_on_demand",
        "feedback_count": 1,
        "pr_url": None,
        "error_message": None,
        "job_metadata": {},
        "progress_step": None,
        "started_at": None,
        "completed_at": None,
        "created_at": "2024-01-15T10:30:00Z",
    }


EVENT = {
    "type": "kaizen.job.started.v1",
    "time": "2024-01-15T10:30:00Z",
    "source": "optimizer",
    "data": {"step": "compile"},
    "correlation_id": None,
    "causation_id": None,
    "offset": 3,
}


def _api(request: httpx.Request) -> httpx.Response:
    """Answers a job, a list of jobs, an SSE stream of one event, a 404 and a broken connection."""
    path = request.url.path
    if path.endswith("/stream"):
        body = f": ping\nevent: {EVENT['type']}\nid: 3\ndata: {json.dumps(EVENT)}\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    if path == "/api/v1/jobs":
        return httpx.Response(200, json=[_job("PENDING"), _job("SUCCESS")])
    if path == f"/api/v1/jobs/{OTHER}":
        return httpx.Response(200, json=_job("SUCCESS"))
    if path == "/health":
        raise httpx.ConnectError("refused", request=request)
    problem = {"type": "urn:x", "title": "Not Found", "status": 404, "detail": path, "instance": path}
    return httpx.Response(404, json=problem)


async def _async_answers(client: AsyncKaizen) -> list[Any]:
    streamed = [event async for event in client.jobs.stream(OTHER, last_event_id=2)]
    return [await client.jobs.get(OTHER), await client.jobs.list(), streamed]


def test_both_clients_read_answers_streams_and_errors_alike() -> None:
    sync, aio = _clients(_api)
    answers = [sync.jobs.get(OTHER), sync.jobs.list(), list(sync.jobs.stream(OTHER, last_event_id=2))]
    assert asyncio.run(_async_answers(aio)) == answers
    assert answers[2] == [m.JobEvent.model_validate(EVENT)]
    with pytest.raises(NotFound) as sync_error:
        sync.tasks.get(TASK)
    with pytest.raises(NotFound) as async_error:
        asyncio.run(aio.tasks.get(TASK))
    assert sync_error.value.problem == async_error.value.problem
    with pytest.raises(TransportError, match="GET /health"):
        sync.health()
    with pytest.raises(TransportError, match="GET /health"):
        asyncio.run(aio.health())
    sync.close(1)
    asyncio.run(aio.aclose(1))


def test_the_async_wait_falls_back_to_polling_when_the_stream_fails() -> None:
    states = iter(["PENDING", "RUNNING", "SUCCESS"])

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stream"):
            return httpx.Response(502, text="a proxy that does not stream")
        return httpx.Response(200, json=_job(next(states, "SUCCESS")))

    async def wait(client: AsyncKaizen) -> tuple[m.JobResponse, list[str]]:
        seen: list[str] = []
        job = await client.jobs.wait(OTHER, on_progress=lambda j: seen.append(j.status), poll_interval=0.01)
        await client.aclose(1)
        return job, seen

    _, aio = _clients(api)
    job, seen = asyncio.run(wait(aio))
    assert job.status == "SUCCESS" and seen == ["PENDING", "RUNNING", "SUCCESS"]
