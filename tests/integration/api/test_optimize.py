"""``POST /optimize/{task_id}`` with the real optimizer deciding: a job and an estimate, or why not;
``GET /optimize/{task_id}/estimate``: the same estimate, and nothing started."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from shared.llm.pricing import split_sizes
from tests.integration.api.conftest import Api, MakeApi, assert_problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WITH_OPTIMIZER = ("projector", "optimizer")


async def _task_with_feedback(api: Api, n: int, **settings: Any) -> str:
    task = (await api.client.post("/api/v1/tasks", json={"name": "summarize", **settings})).json()
    for i in range(n):
        body = {
            "task_id": task["id"],
            "inputs": {"ticket": f"t{i}"},
            "output": f"o{i}",
            "score": 0.9 if i else 0.1,
        }
        assert (await api.client.post("/api/v1/feedback", json=body)).status_code == 201
    return str(task["id"])


async def test_optimize_creates_a_job_with_an_estimate(make_api: MakeApi) -> None:
    async with make_api(services=WITH_OPTIMIZER) as api:
        task_id = await _task_with_feedback(api, 6)
        response = await api.client.post(f"/api/v1/optimize/{task_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        job = body["job"]
        assert job["task_id"] == task_id and job["triggered_by"] == "api_on_demand"
        assert (await api.client.get(f"/api/v1/jobs/{job['id']}")).status_code == 200
        estimate = body["cost_estimate"]
        assert (estimate["train_size"], estimate["val_size"]) == split_sizes(
            5
        )  # the one low score is not gold
        assert (
            estimate["teacher_model"] == api.settings.default_teacher_model
            and estimate["estimated_llm_calls"] > 0
        )
        assert body["budget_warning"] is None
        shown = (await api.client.get(f"/api/v1/tasks/{task_id}")).json()
        assert shown["last_optimization"]["id"] == job["id"]


async def test_two_racing_requests_get_one_job_and_one_409(make_api: MakeApi) -> None:
    async with make_api(services=WITH_OPTIMIZER) as api:
        task_id = await _task_with_feedback(api, 3)
        answers = await asyncio.gather(*(api.client.post(f"/api/v1/optimize/{task_id}") for _ in range(2)))
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
        refused = assert_problem(next(r for r in answers if r.status_code == 409), 409)
        accepted = next(r for r in answers if r.status_code == 200).json()
        assert refused["active_job_id"] == accepted["job"]["id"]
        again = await api.client.post(f"/api/v1/optimize/{task_id}")
        assert again.status_code in (200, 409)  # 200 only if the first job already ended


async def test_over_budget_estimates_carry_a_warning(make_api: MakeApi) -> None:
    async with make_api(services=WITH_OPTIMIZER) as api:
        task_id = await _task_with_feedback(
            api, 3, teacher_model="gpt-4o", judge_model="gpt-4o-mini", cost_budget=0.01
        )
        body = (await api.client.post(f"/api/v1/optimize/{task_id}")).json()
        assert body["cost_estimate"]["estimated_cost_usd"] > 0.01
        assert "exceeds the task's cost_budget" in body["budget_warning"]


async def test_optimize_refuses_unknown_tasks_and_tasks_without_feedback(api: Api) -> None:
    assert_problem(await api.client.post(f"/api/v1/optimize/{uuid.uuid4()}"), 404)
    task_id = await _task_with_feedback(api, 0)
    assert (
        "no feedback" in assert_problem(await api.client.post(f"/api/v1/optimize/{task_id}"), 400)["detail"]
    )
    assert_problem(await api.client.post("/api/v1/optimize/not-a-uuid"), 422)


async def test_the_estimate_is_what_optimize_answers_and_starts_nothing(make_api: MakeApi) -> None:
    async with make_api(services=WITH_OPTIMIZER) as api:
        task_id = await _task_with_feedback(
            api, 6, teacher_model="gpt-4o", judge_model="gpt-4o-mini", cost_budget=0.01
        )
        key = (await api.client.post("/api/v1/keys", json={"name": "dashboard", "role": "read"})).json()
        read = {"X-API-Key": key["key"]}
        response = await api.client.get(f"/api/v1/optimize/{task_id}/estimate", headers=read)
        assert response.status_code == 200, response.text
        estimated = response.json()
        assert (estimated["feedback_count"], estimated["usable_examples"]) == (6, 5)
        assert (
            estimated["cost_estimate"]["train_size"],
            estimated["cost_estimate"]["val_size"],
        ) == split_sizes(5)
        assert "exceeds the task's cost_budget" in estimated["budget_warning"]
        assert (await api.client.get("/api/v1/jobs", params={"task_id": task_id})).json() == []
        assert_problem(await api.client.post(f"/api/v1/optimize/{task_id}", headers=read), 403)
        started = (await api.client.post(f"/api/v1/optimize/{task_id}")).json()
        assert started["cost_estimate"] == estimated["cost_estimate"]
        assert started["budget_warning"] == estimated["budget_warning"]


async def test_the_estimate_refuses_what_optimize_refuses(api: Api) -> None:
    assert_problem(await api.client.get(f"/api/v1/optimize/{uuid.uuid4()}/estimate"), 404)
    task_id = await _task_with_feedback(api, 0)
    refused = assert_problem(await api.client.get(f"/api/v1/optimize/{task_id}/estimate"), 400)
    assert "no feedback" in refused["detail"]
    assert_problem(await api.client.get("/api/v1/optimize/not-a-uuid/estimate"), 422)
