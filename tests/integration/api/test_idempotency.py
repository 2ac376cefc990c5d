"""``Idempotency-Key``: a retried write returns the first answer and never writes twice,
including after a 503 or 504 whose write did land."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

from services.api.deps import ApiContext
from shared.events.envelope import Envelope
from shared.kafka.producer import LogUnavailable, Position
from shared.readmodel.tables import feedback
from tests.integration.api.conftest import Api, assert_problem, read_log

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _task(api: Api, **settings: Any) -> str:
    response = await api.client.post("/api/v1/tasks", json={"name": f"t-{uuid.uuid4().hex[:6]}", **settings})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _item(task_id: str, n: int = 0, **overrides: Any) -> dict[str, Any]:
    return {"task_id": task_id, "inputs": {"ticket": f"t{n}"}, "output": f"o{n}", "score": 0.8} | overrides


def _key(value: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": value or str(uuid.uuid4())}


async def _count(api: Api, task_id: str) -> int:
    [(n,)] = await api.rows(select(func.count()).select_from(feedback).where(feedback.c.task_id == task_id))
    return int(n)


def _context(api: Api) -> ApiContext:
    context: ApiContext = api.transport.app.state.kaizen  # type: ignore[attr-defined]
    return context


async def _logged_feedback(api: Api, task_id: str) -> list[str]:
    """The feedback ids of every FeedbackRecorded of ``task_id`` in the log, duplicates included."""
    ids = []
    for value in await read_log(api.system.bootstrap, api.system.topics.tasks):
        record = json.loads(value)
        if record["type"] == "kaizen.feedback.recorded.v1" and record["data"]["task_id"] == task_id:
            ids.append(record["data"]["feedback_id"])
    return ids


@contextmanager
def _timed_out_after_landing(api: Api, landed: int | None = None) -> Iterator[None]:
    """The next append reaches Kafka (its first ``landed`` events, or all) but its answer is lost: a 503."""
    events = _context(api).events
    real = events.append_all

    async def lost(envelopes: list[Envelope]) -> list[Position]:
        await real(envelopes[:landed] if landed is not None else envelopes)
        raise LogUnavailable("simulated: the acknowledgement never arrived")

    events.append_all = lost  # type: ignore[method-assign]
    try:
        yield
    finally:
        events.append_all = real  # type: ignore[method-assign]
        # The simulated failure taught the API that Kafka is down; the probe would unlearn it in
        # a moment, this test does it at once.
        broker = _context(api).writer.broker
        if broker is not None:
            broker.answered()


@contextmanager
def _projector_too_slow(api: Api) -> Iterator[None]:
    """The write lands, but the API stops waiting for the projector at once: a 504."""
    writer = _context(api).writer
    timeout, writer.timeout = writer.timeout, 0.0
    try:
        yield
    finally:
        writer.timeout = timeout


async def test_a_retried_feedback_returns_the_first_answer_and_writes_once(api: Api) -> None:
    task = await _task(api)
    headers = _key()
    first = await api.client.post("/api/v1/feedback", json=_item(task), headers=headers)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = await api.client.post("/api/v1/feedback", json=_item(task), headers=headers)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await _count(api, task) == 1
    assert await _logged_feedback(api, task) == [first.json()["id"]]


async def test_the_same_key_with_another_body_is_refused(api: Api) -> None:
    task = await _task(api)
    headers = _key()
    assert (await api.client.post("/api/v1/feedback", json=_item(task), headers=headers)).status_code == 201
    other = await api.client.post("/api/v1/feedback", json=_item(task, score=0.1), headers=headers)
    assert assert_problem(other, 422)["type"] == "urn:kaizen:problem:idempotency-key-reused"
    batch = {"items": [_item(task, 0)]}
    assert (await api.client.post("/api/v1/feedback/batch", json=batch, headers=headers)).status_code == 200
    changed = {"items": [_item(task, 9)]}
    reused = await api.client.post("/api/v1/feedback/batch", json=changed, headers=headers)
    assert "items/0" in assert_problem(reused, 422)["detail"]
    # The key is scoped by route: the single write and the batch each recorded one item.
    assert await _count(api, task) == 2


async def test_a_key_is_scoped_to_the_api_key_that_sent_it(api: Api) -> None:
    task = await _task(api)
    created = await api.client.post("/api/v1/keys", json={"name": "app", "role": "ingest"})
    other_key = created.json()["key"]
    headers = _key()
    assert (await api.client.post("/api/v1/feedback", json=_item(task), headers=headers)).status_code == 201
    other = await api.client.post(
        "/api/v1/feedback", json=_item(task), headers=headers | {"X-API-Key": other_key}
    )
    assert other.status_code == 201 and "Idempotent-Replayed" not in other.headers
    assert await _count(api, task) == 2


async def test_a_retry_after_a_504_whose_write_landed_does_not_double_the_row(api: Api) -> None:
    task = await _task(api)
    headers = _key()
    with _projector_too_slow(api):
        timed_out = await api.client.post("/api/v1/feedback", json=_item(task), headers=headers)
    assert_problem(timed_out, 504)
    retried = await api.client.post("/api/v1/feedback", json=_item(task), headers=headers)
    assert retried.status_code == 201, retried.text
    assert await _count(api, task) == 1
    assert set(await _logged_feedback(api, task)) == {retried.json()["id"]}


async def test_a_retry_after_a_503_whose_write_landed_does_not_double_the_row(api: Api) -> None:
    task = await _task(api)
    headers = _key()
    with _timed_out_after_landing(api):
        lost = await api.client.post("/api/v1/feedback", json=_item(task), headers=headers)
    assert_problem(lost, 503)
    retried = await api.client.post("/api/v1/feedback", json=_item(task), headers=headers)
    assert retried.status_code == 201, retried.text
    assert await _count(api, task) == 1
    # The log may hold the event twice (the retry came before the projector showed the
    # first); the read model holds it once.
    assert set(await _logged_feedback(api, task)) == {retried.json()["id"]}


async def test_a_batch_retried_after_a_partial_append_ends_with_every_item_once(api: Api) -> None:
    task = await _task(api, feedback_threshold=100_000)
    body = {"items": [_item(task, n) for n in range(50)]}
    headers = _key()
    with _timed_out_after_landing(api, landed=20):
        assert_problem(await api.client.post("/api/v1/feedback/batch", json=body, headers=headers), 503)
    retried = await api.client.post("/api/v1/feedback/batch", json=body, headers=headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["accepted"] == 50
    assert retried.headers.get("Idempotent-Replayed") in (None, "true")
    assert await _count(api, task) == 50
    ids = [r["id"] for r in retried.json()["results"]]
    logged = await _logged_feedback(api, task)
    assert set(logged) == set(ids) and len(logged) <= 70  # at most the 20 that landed come twice
    # Once everything is visible, a further retry appends nothing and answers the same.
    again = await api.client.post("/api/v1/feedback/batch", json=body, headers=headers)
    assert again.json() == retried.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(await _logged_feedback(api, task)) == len(logged)


async def test_a_batch_retry_keeps_the_first_verdicts(api: Api) -> None:
    task = await _task(api, schema_json=["ticket"])
    body = {"items": [_item(task, 0), _item(task, 1, score=2), _item(task, 2)]}
    headers = _key()
    with _projector_too_slow(api):
        assert_problem(await api.client.post("/api/v1/feedback/batch", json=body, headers=headers), 504)
    retried = await api.client.post("/api/v1/feedback/batch", json=body, headers=headers)
    assert [r["status"] for r in retried.json()["results"]] == [201, 422, 201]
    assert await _count(api, task) == 2


async def test_a_retried_seed_upload_adds_no_seed_twice(api: Api) -> None:
    task = await _task(api, schema_json=["ticket"])
    data = b"\n".join(
        json.dumps({"inputs": {"ticket": f"s{n}"}, "output": f"o{n}"}).encode() for n in range(30)
    )
    headers = _key()
    url = f"/api/v1/tasks/{task}/seed"
    with _timed_out_after_landing(api):
        assert_problem(await api.client.post(url, files={"file": ("s.jsonl", data)}, headers=headers), 503)
    retried = await api.client.post(url, files={"file": ("s.jsonl", data)}, headers=headers)
    assert retried.status_code == 201, retried.text
    again = await api.client.post(url, files={"file": ("s.jsonl", data)}, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retried.json()
    assert retried.json()["accepted"] == 30 and retried.json()["total_seeds"] == 30
    assert await _count(api, task) == 30
    other = data.replace(b'"o0"', b'"another output"')
    changed = await api.client.post(url, files={"file": ("s.jsonl", other)}, headers=headers)
    assert_problem(changed, 422)


async def test_a_malformed_key_is_a_422_naming_the_header(api: Api) -> None:
    task = await _task(api)
    response = await api.client.post("/api/v1/feedback", json=_item(task), headers=_key("x" * 256))
    assert assert_problem(response, 422)["errors"][0]["field"] == "Idempotency-Key"
    assert await _count(api, task) == 0
