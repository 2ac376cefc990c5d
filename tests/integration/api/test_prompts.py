"""Prompt versions: the active one (404 before any), the list, and activating a draft."""

from __future__ import annotations

import uuid

import pytest

from shared.events.envelope import Envelope
from shared.events.prompts import PromptVersionCreated
from tests.integration.api.conftest import Api, assert_problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

VERSION_FIELDS = {
    "id",
    "task_id",
    "version_number",
    "prompt_text",
    "demos",
    "eval_score",
    "status",
    "optimizer",
    "dspy_version",
    "created_at",
    "job_id",
}


async def _versions(api: Api, task_id: str, count: int) -> list[str]:
    ids = [uuid.uuid4() for _ in range(count)]
    await api.seed(
        *(
            Envelope.wrap(
                PromptVersionCreated(
                    prompt_version_id=version,
                    task_id=uuid.UUID(task_id),
                    job_id=uuid.uuid4(),
                    prompt_text=f"Summarize, take {n}.",
                    demos=[{"ticket": "t", "output": "o"}],
                    eval_score=0.5 + n / 10,
                    dspy_version="3.4.0",
                ),
                source="optimizer",
            )
            for n, version in enumerate(ids, start=1)
        )
    )
    return [str(v) for v in ids]


async def test_activating_a_draft_makes_it_the_active_prompt(api: Api) -> None:
    task = (await api.client.post("/api/v1/tasks", json={"name": "summarize"})).json()
    base = f"/api/v1/prompts/{task['id']}"
    assert_problem(await api.client.get(base), 404)
    first, second = await _versions(api, task["id"], 2)
    versions = (await api.client.get(f"{base}/versions")).json()
    assert [v["id"] for v in versions] == [second, first] and [v["version_number"] for v in versions] == [
        2,
        1,
    ]
    assert set(versions[0]) == VERSION_FIELDS and versions[0]["status"] == "draft"
    activated = await api.client.post(f"{base}/activate", params={"version_id": first})
    assert activated.status_code == 200, activated.text
    assert activated.json()["status"] == "active" and activated.json()["id"] == first
    active = (await api.client.get(base)).json()
    assert (
        active["id"] == first
        and active["prompt_text"] == "Summarize, take 1."
        and active["created_at"].endswith("Z")
    )
    assert (await api.client.get(f"/api/v1/tasks/{task['id']}")).json()["active_prompt_score"] == 0.6
    by_body = await api.client.post(f"{base}/activate", json={"version_id": second})
    assert by_body.status_code == 200 and (await api.client.get(base)).json()["id"] == second
    statuses = {v["id"]: v["status"] for v in (await api.client.get(f"{base}/versions")).json()}
    assert statuses == {first: "archived", second: "active"}
    assert (
        "archived"
        in assert_problem(await api.client.post(f"{base}/activate", params={"version_id": first}), 409)[
            "detail"
        ]
    )


async def test_activation_refuses_unknown_versions_tasks_and_missing_ids(api: Api) -> None:
    task = (await api.client.post("/api/v1/tasks", json={"name": "summarize"})).json()
    base = f"/api/v1/prompts/{task['id']}"
    assert_problem(await api.client.post(f"{base}/activate", params={"version_id": str(uuid.uuid4())}), 404)
    assert_problem(
        await api.client.post(
            f"/api/v1/prompts/{uuid.uuid4()}/activate", params={"version_id": str(uuid.uuid4())}
        ),
        404,
    )
    assert_problem(await api.client.get(f"/api/v1/prompts/{uuid.uuid4()}/versions"), 404)
    missing = await api.client.post(f"{base}/activate")
    assert assert_problem(missing, 422)["errors"][0]["field"] == "version_id"
    assert_problem(await api.client.post(f"{base}/activate", params={"version_id": "v1"}), 422)
