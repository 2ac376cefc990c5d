"""Feedback and seed uploads: schema checks, counts, listing, file problems, the seed quota."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from services.api import domain
from services.api.pagination import MAX_OFFSET
from services.api.schemas.feedback import SeedsRejected
from shared.events.feedback import SeedsUploaded
from tests.integration.api.conftest import Api, assert_problem, read_log

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _task(api: Api, **settings: Any) -> dict[str, Any]:
    response = await api.client.post("/api/v1/tasks", json={"name": "summarize", **settings})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _feedback(task_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "inputs": {"ticket": "printer on fire"},
        "output": "Fire.",
        "score": 0.9,
    } | overrides


def _jsonl(*items: Any) -> bytes:
    return "\n".join(i if isinstance(i, str) else json.dumps(i) for i in items).encode()


async def test_feedback_is_recorded_counted_and_listed_newest_first(api: Api) -> None:
    task = await _task(api, schema_json=["ticket"], feedback_threshold=4)
    first = await api.client.post("/api/v1/feedback", json=_feedback(task["id"], metadata={"user": "u1"}))
    assert first.status_code == 201, first.text
    recorded = first.json()
    assert recorded["score"] == 0.9 and recorded["source"] == "sdk" and recorded["metadata"] == {"user": "u1"}
    assert recorded["created_at"].endswith("Z")
    await api.client.post("/api/v1/feedback", json=_feedback(task["id"], source="user_rating", score=0.2))
    await api.client.post("/api/v1/feedback", json=_feedback(task["id"], source="seed"))
    shown = (await api.client.get(f"/api/v1/tasks/{task['id']}")).json()
    assert shown["feedback_count"] == 2
    assert shown["threshold_progress"] == {"progress": 0.5, "feedback_since_last_job": 2, "threshold": 4}
    listed = (await api.client.get("/api/v1/feedback", params={"task_id": task["id"]})).json()
    assert [f["source"] for f in listed] == ["seed", "user_rating", "sdk"]
    assert [f["id"] for f in listed][-1] == recorded["id"]
    page = (
        await api.client.get("/api/v1/feedback", params={"task_id": task["id"], "limit": 1, "offset": 1})
    ).json()
    assert [f["source"] for f in page] == ["user_rating"]
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"task_id": "nope"}):
        assert_problem(await api.client.get("/api/v1/feedback", params=params), 422)


async def test_the_answer_to_a_write_is_byte_for_byte_what_reading_it_back_returns(api: Api) -> None:
    """The 201 is built from the event the API appended, not read back; the read model must agree."""
    task = await _task(api)
    bodies = [
        _feedback(task["id"]),
        _feedback(task["id"], score=1, source="auto_eval", metadata={}),
        _feedback(
            task["id"],
            inputs={"ticket": "Ünïcödé ✓ 💥", "n": 2**53 + 1, "x": [0.1, -0.0, 1e-7, None, True]},
            output="",
            score=0,
            source="user_rating",
            metadata={"nested": {"z": 1, "a": [{"b": "c"}]}, "": "empty key"},
        ),
    ]
    for body in bodies:
        written = await api.client.post("/api/v1/feedback", json=body)
        assert written.status_code == 201, written.text
        listed = await api.client.get("/api/v1/feedback", params={"task_id": task["id"], "limit": 1})
        assert listed.content == b"[" + written.content + b"]"


async def test_inputs_must_match_the_task_schema_exactly(api: Api) -> None:
    task = await _task(api, schema_json=["ticket", "lang"])
    missing = await api.client.post("/api/v1/feedback", json=_feedback(task["id"]))
    assert assert_problem(missing, 422)["errors"] == [
        {"field": "inputs.lang", "message": "is required by the task's schema"}
    ]
    extra = await api.client.post(
        "/api/v1/feedback", json=_feedback(task["id"], inputs={"ticket": "t", "lang": "en", "user": "x"})
    )
    assert assert_problem(extra, 422)["detail"] == "inputs.user: is not in the task's schema"
    assert_problem(await api.client.post("/api/v1/feedback", json=_feedback(task["id"], score=1.5)), 422)
    assert_problem(await api.client.post("/api/v1/feedback", json=_feedback(str(uuid.uuid4()))), 404)


async def test_a_seed_upload_reports_each_bad_line_and_adds_the_good_ones(api: Api) -> None:
    task = await _task(api, schema_json=["ticket"])
    good = [{"inputs": {"ticket": f"t{i}"}, "output": f"o{i}"} for i in range(450)]
    data = _jsonl(*good[:2], "{broken", {"inputs": {"other": 1}, "output": "x"}, "", *good[2:])
    response = await api.client.post(f"/api/v1/tasks/{task['id']}/seed", files={"file": ("s.jsonl", data)})
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["accepted"] == 450 and result["rejected"] == 2
    assert [e["line"] for e in result["errors"]] == [3, 4]
    assert result["total_seeds"] == 450 and result["seed_limit"] == domain.SEED_LIMIT
    assert (await api.client.get(f"/api/v1/tasks/{task['id']}")).json()["feedback_count"] == 0
    uploads = [
        v
        for v in await read_log(api.system.bootstrap, api.system.topics.tasks)
        if SeedsUploaded.TYPE.encode() in v
    ]
    assert sorted(json.loads(v)["data"]["part"] for v in uploads) == [1, 2, 3]


async def test_unusable_seed_files_are_refused(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    task = await _task(api)
    url = f"/api/v1/tasks/{task['id']}/seed"
    assert_problem(await api.client.post(url, files={"file": ("s.jsonl", b"")}), 400)
    assert_problem(await api.client.post(url, files={"file": ("s.jsonl", b"\xff\xfe\x00")}), 400)
    none_valid = await api.client.post(url, files={"file": ("s.jsonl", _jsonl("{", "[]"))})
    assert [e["line"] for e in assert_problem(none_valid, 422)["errors"]] == [1, 2]
    SeedsRejected.model_validate(none_valid.json())  # the route's documented 422
    assert assert_problem(await api.client.post(url, data={"x": "y"}), 422)["detail"] == "file: is required"
    assert_problem(
        await api.client.post(f"/api/v1/tasks/{uuid.uuid4()}/seed", files={"file": ("s", b"{}")}), 404
    )
    monkeypatch.setattr(domain, "SEED_LIMIT", 2)
    seeds = _jsonl(*[{"inputs": {"t": str(i)}, "output": "o"} for i in range(3)])
    partial = (await api.client.post(url, files={"file": ("s.jsonl", seeds)})).json()
    assert (partial["accepted"], partial["rejected"], partial["total_seeds"]) == (2, 1, 2)
    full = await api.client.post(url, files={"file": ("s.jsonl", seeds)})
    assert "limit of 2 seeds" in assert_problem(full, 400)["detail"]


async def test_the_largest_documented_offset_is_an_empty_page_and_one_more_is_422(api: Api) -> None:
    task = await _task(api)
    await api.client.post("/api/v1/feedback", json=_feedback(task["id"]))
    for path in ("/api/v1/feedback", "/api/v1/jobs", f"/api/v1/prompts/{task['id']}/versions"):
        response = await api.client.get(path, params={"offset": MAX_OFFSET})
        assert response.status_code == 200 and response.json() == [], response.text
        beyond = await api.client.get(path, params={"offset": MAX_OFFSET + 1})
        assert assert_problem(beyond, 422)["detail"] == f"offset: must be at most {MAX_OFFSET}"
