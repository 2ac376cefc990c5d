"""A task names only models the operator allows, and only budgets that can be enforced (issue 11, 6)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.model_policy import ModelPrice
from shared.readmodel.tables import tasks
from tests.integration.api.conftest import Api, MakeApi, assert_problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def fields(body: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in body["errors"]}


async def test_model_strings_outside_the_allowlist_or_like_urls_get_422_naming_the_field(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"teacher_model": "huggingface/https://evil.example/x"}, "teacher_model", "not a URL"),
        ({"judge_model": "mistral/mistral-large"}, "judge_model", "KAIZEN_ALLOWED_MODELS"),
        (
            {"evaluator_config": {"task_model": "huggingface/https:evil"}},
            "evaluator_config.task_model",
            "URL",
        ),
    ]
    for settings, field, reason in cases:
        response = await api.client.post("/api/v1/tasks", json={"name": f"t-{field}", **settings})
        body = assert_problem(response, 422)
        assert list(fields(body)) == [field] and reason in fields(body)[field], body
    assert await api.table(tasks) == []
    ok = await api.client.post("/api/v1/tasks", json={"name": "ok", "teacher_model": "openai/gpt-4o-mini"})
    assert ok.status_code == 201, ok.text


async def test_a_patch_to_a_refused_model_is_422_and_changes_nothing(api: Api) -> None:
    task = (await api.client.post("/api/v1/tasks", json={"name": "t"})).json()
    url = f"/api/v1/tasks/{task['id']}"

    body = assert_problem(
        await api.client.patch(url, json={"teacher_model": "openai/http://10.0.0.1/v1"}), 422
    )
    assert list(fields(body)) == ["teacher_model"]
    body = assert_problem(
        await api.client.patch(url, json={"evaluator_config": {"task_model": "groq/x"}}), 422
    )
    assert list(fields(body)) == ["evaluator_config.task_model"]
    assert (await api.client.get(url)).json() == task


UNPRICED = {"name": "t", "teacher_model": "openai/ft-acme-xyz", "cost_budget": 1.0}


async def test_a_budget_over_an_unpriced_model_is_refused(api: Api) -> None:
    body = assert_problem(await api.client.post("/api/v1/tasks", json=UNPRICED), 422)
    assert list(fields(body)) == ["cost_budget"]
    assert "cannot be enforced" in fields(body)["cost_budget"] and "openai/ft-acme-xyz" in body["detail"]
    # Without a budget there is nothing to enforce; adding one later is refused.
    created = await api.client.post("/api/v1/tasks", json={**UNPRICED, "cost_budget": None})
    assert created.status_code == 201, created.text
    patch = await api.client.patch(f"/api/v1/tasks/{created.json()['id']}", json={"cost_budget": 2.0})
    assert list(fields(assert_problem(patch, 422))) == ["cost_budget"]
    # The embedded default model is local, hence free: its budget is enforceable.
    local = await api.client.post("/api/v1/tasks", json={"name": "local", "cost_budget": 0.1})
    assert local.status_code == 201, local.text


async def test_an_operator_price_makes_the_budget_enforceable(make_api: MakeApi) -> None:
    price = ModelPrice(input_usd_per_million=1.0, output_usd_per_million=2.0)
    async with make_api(model_prices={"openai/ft-acme-xyz": price}, allowed_models="openai/*") as api:
        created = await api.client.post("/api/v1/tasks", json=UNPRICED)
        assert created.status_code == 201, created.text
        assert created.json()["cost_budget"] == 1.0
