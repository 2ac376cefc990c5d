"""Keyed writes whose ids a racing attempt wrote first, with another body: refused (422).

A batch's read-back after the append tells the racing rows from the batch's own by their
log offset and compares the bodies of those only; a single feedback and a seed upload
compare the rows the projector kept with what they sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select

from services.api.deps import ApiContext
from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded, SeedsUploaded
from shared.kafka.producer import Position
from shared.readmodel.tables import feedback
from tests.integration.api.conftest import Api, assert_problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _task(api: Api) -> str:
    response = await api.client.post("/api/v1/tasks", json={"name": f"t-{uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _items(task_id: str, n: int) -> list[dict[str, Any]]:
    return [
        {"task_id": task_id, "inputs": {"ticket": f"t{i}"}, "output": f"o{i}", "score": 0.8} for i in range(n)
    ]


@contextmanager
def _raced(api: Api, racing: slice, output: str | None) -> Iterator[None]:
    """The next append is overtaken: just before it, another attempt appends the same ids
    (the ``racing`` ones), with the output changed to ``output`` (``None``: the same body)."""
    context: ApiContext = api.transport.app.state.kaizen  # type: ignore[attr-defined]
    events = context.events
    real = events.append_all

    async def overtaken(envelopes: list[Envelope]) -> list[Position]:
        events.append_all = real  # type: ignore[method-assign]
        rivals = []
        changed = {"output": output} if output is not None else {}
        for envelope in envelopes[racing]:
            data = envelope.data
            if isinstance(data, SeedsUploaded):
                seeds = [seed.model_copy(update=changed) for seed in data.seeds]
                rivals.append(Envelope.wrap(data.model_copy(update={"seeds": seeds}), source="rival"))
                continue
            assert isinstance(data, FeedbackRecorded)
            rivals.append(Envelope.wrap(FeedbackRecorded(**(data.model_dump() | changed)), source="rival"))
        await real(rivals)
        return await real(envelopes)

    events.append_all = overtaken  # type: ignore[method-assign]
    try:
        yield
    finally:
        events.append_all = real  # type: ignore[method-assign]


async def test_a_racing_attempt_with_another_body_that_wrote_first_is_refused(api: Api) -> None:
    task = await _task(api)
    with _raced(api, slice(3, 5), output="another body"):
        response = await api.client.post(
            "/api/v1/feedback/batch", json={"items": _items(task, 8)}, headers={"Idempotency-Key": "k1"}
        )
    assert_problem(response, 422)
    assert response.json()["type"].endswith("idempotency-key-reused")
    rows = await api.rows(select(feedback.c.output).where(feedback.c.task_id == task))
    assert sorted(r.output for r in rows) == sorted(
        ["another body"] * 2 + [f"o{i}" for i in (0, 1, 2, 5, 6, 7)]
    )


async def test_an_earlier_attempt_with_the_same_body_that_wrote_first_is_the_same_answer(api: Api) -> None:
    task = await _task(api)
    with _raced(api, slice(None), output=None):
        response = await api.client.post(
            "/api/v1/feedback/batch", json={"items": _items(task, 8)}, headers={"Idempotency-Key": "k2"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 8
    rows = await api.rows(select(feedback.c.id).where(feedback.c.task_id == task))
    assert {r.id for r in rows} == {r["id"] for r in response.json()["results"]}


async def test_a_keyed_feedback_overtaken_by_another_body_is_refused(api: Api) -> None:
    task = await _task(api)
    item = {"task_id": task, "inputs": {"ticket": "t"}, "output": "mine", "score": 0.5}
    with _raced(api, slice(None), output="another body"):
        response = await api.client.post("/api/v1/feedback", json=item, headers={"Idempotency-Key": "k3"})
    assert_problem(response, 422)
    assert response.json()["type"].endswith("idempotency-key-reused")
    rows = await api.rows(select(feedback.c.output).where(feedback.c.task_id == task))
    assert [r.output for r in rows] == ["another body"]
    missing = item | {"task_id": str(uuid.uuid4())}
    gone = await api.client.post("/api/v1/feedback", json=missing, headers={"Idempotency-Key": "k4"})
    assert_problem(gone, 404)


async def test_a_keyed_seed_upload_overtaken_by_another_body_is_refused(
    api: Api,
) -> None:
    task = await _task(api)
    lines = [json.dumps({"inputs": {"ticket": f"s{n}"}, "output": f"o{n}"}) for n in range(3)]
    upload = {"file": ("seeds.jsonl", "\n".join(lines).encode())}
    with _raced(api, slice(None), output="another body"):
        response = await api.client.post(
            f"/api/v1/tasks/{task}/seed", files=upload, headers={"Idempotency-Key": "k5"}
        )
    assert_problem(response, 422)
    assert response.json()["type"].endswith("idempotency-key-reused")
    plain = await api.client.post(f"/api/v1/tasks/{task}/seed", files=upload)
    assert plain.status_code == 201, plain.text
    assert plain.json()["total_seeds"] == 6
