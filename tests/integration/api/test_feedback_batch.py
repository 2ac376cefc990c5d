"""``POST /api/v1/feedback/batch``: per-item results, one bad item never sinks the others."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.readmodel.tables import feedback
from tests.integration.api.conftest import Api, assert_problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _task(api: Api, **settings: Any) -> str:
    response = await api.client.post("/api/v1/tasks", json={"name": f"t-{uuid.uuid4().hex[:6]}", **settings})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _item(task_id: str, n: int = 0, **overrides: Any) -> dict[str, Any]:
    return {"task_id": task_id, "inputs": {"ticket": f"t{n}"}, "output": f"o{n}", "score": 0.8} | overrides


async def _count(api: Api, task_id: str) -> int:
    [(n,)] = await api.rows(select(func.count()).select_from(feedback).where(feedback.c.task_id == task_id))
    return int(n)


async def test_a_batch_records_every_good_item_and_refuses_each_bad_one_alone(api: Api) -> None:
    task = await _task(api, schema_json=["ticket"])
    items: list[Any] = [
        _item(task, 0),
        _item(task, 1, score=1.5),  # out of range
        _item(str(uuid.uuid4()), 2),  # no such task
        _item(task, 3, inputs={"other": "x"}),  # not the task's schema
        "not an object",
        _item(task, 5, output="nul \u0000 inside"),  # text PostgreSQL cannot store
        _item(task, 6, source="user_rating", metadata={"user": "u6"}),
    ]
    response = await api.client.post("/api/v1/feedback/batch", json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["refused"]) == (2, 5)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(7))
    assert [r["status"] for r in results] == [201, 422, 404, 422, 422, 422, 201]
    for result in results:
        if result["status"] == 201:
            assert result["id"] and result["problem"] is None
        else:
            problem = result["problem"]
            assert result["id"] is None
            assert problem["status"] == result["status"]
            assert problem["instance"] == f"/api/v1/feedback/batch#/items/{result['index']}"
            assert problem["type"].startswith("urn:kaizen:problem:") and problem["detail"]
    assert results[1]["problem"]["errors"] == [{"field": "score", "message": "must be at most 1"}]
    assert results[3]["problem"]["errors"][0]["field"] == "inputs.ticket"
    assert results[4]["problem"]["errors"] == [{"field": "item", "message": "must be an object"}]
    # Read your writes: the accepted items are visible when the answer comes.
    listed = (await api.client.get("/api/v1/feedback", params={"task_id": task})).json()
    assert {f["id"] for f in listed} == {results[0]["id"], results[6]["id"]}
    assert {f["output"] for f in listed} == {"o0", "o6"}


async def test_a_thousand_items_are_appended_together_and_visible_on_return(api: Api) -> None:
    task = await _task(api, feedback_threshold=100_000)
    items = [_item(task, n) for n in range(1000)]
    response = await api.client.post("/api/v1/feedback/batch", json={"items": items})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1000
    assert await _count(api, task) == 1000
    shown = (await api.client.get(f"/api/v1/tasks/{task}")).json()
    assert shown["feedback_count"] == 1000


async def test_the_batch_itself_is_bounded_and_must_not_be_empty(api: Api) -> None:
    task = await _task(api)
    too_many = await api.client.post("/api/v1/feedback/batch", json={"items": [_item(task)] * 1001})
    assert assert_problem(too_many, 422)["errors"] == [
        {"field": "items", "message": "must have at most 1000 items"}
    ]
    assert_problem(await api.client.post("/api/v1/feedback/batch", json={"items": []}), 422)
    assert_problem(await api.client.post("/api/v1/feedback/batch", json=[_item(task)]), 422)
    assert await _count(api, task) == 0


async def test_the_batch_takes_an_ingest_key_like_the_single_route(api: Api) -> None:
    task = await _task(api)
    keys = {}
    for role in ("ingest", "read"):
        created = await api.client.post("/api/v1/keys", json={"name": role, "role": role})
        assert created.status_code == 201, created.text
        keys[role] = created.json()["key"]
    body = {"items": [_item(task)]}
    async with api.anonymous() as anonymous:
        assert_problem(await anonymous.post("/api/v1/feedback/batch", json=body), 401)
        read = await anonymous.post("/api/v1/feedback/batch", json=body, headers={"X-API-Key": keys["read"]})
        assert_problem(read, 403)
        ingest = await anonymous.post(
            "/api/v1/feedback/batch", json=body, headers={"X-API-Key": keys["ingest"]}
        )
        assert ingest.status_code == 200, ingest.text
    assert await _count(api, task) == 1
