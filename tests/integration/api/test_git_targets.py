"""A task's token goes only where the operator allows, and never follows a changed Git target.

Issue 11, finding 1: any key could PATCH ``git_base_url`` to its own host and keep the
stored token, which the next publish then sent there.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from shared.readmodel.tables import tasks
from tests.integration.api.conftest import GIT_TOKEN, Api, MakeApi, assert_problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ENTERPRISE = "https://ghe.example.com"
ALLOWED = f"https://api.github.com,https://gitlab.com,{ENTERPRISE}"
GIT = {"git_provider": "github", "git_repo": "myorg/myrepo", "git_token": GIT_TOKEN}


async def _task(api: Api, **settings: Any) -> dict[str, Any]:
    response = await api.client.post("/api/v1/tasks", json={"name": "summarize", **GIT, **settings})
    assert response.status_code == 201, response.text
    assert response.json()["git_token_set"] is True
    return dict(response.json())


async def _stored_token(api: Api, task_id: str) -> str | None:
    [row] = await api.rows(select(tasks.c.git_token_encrypted).where(tasks.c.id == task_id))
    return row.git_token_encrypted  # type: ignore[no-any-return]


async def test_patching_the_base_url_to_an_unlisted_host_is_422_and_changes_nothing(
    make_api: MakeApi,
) -> None:
    async with make_api(git_hosts=ALLOWED) as api:
        task = await _task(api)
        url = f"/api/v1/tasks/{task['id']}"

        response = await api.client.patch(url, json={"git_base_url": "https://collector.attacker.example"})

        body = assert_problem(response, 422)
        assert body["errors"][0]["field"] == "git_base_url"
        assert "KAIZEN_GIT_HOSTS" in body["detail"]
        assert (await api.client.get(url)).json() == task
        assert await _stored_token(api, task["id"]) is not None


@pytest.mark.parametrize(
    "change",
    [{"git_base_url": ENTERPRISE}, {"git_provider": "gitlab"}, {"git_repo": "myorg/other"}],
    ids=["git_base_url", "git_provider", "git_repo"],
)
async def test_changing_where_the_token_goes_forgets_the_token(
    make_api: MakeApi, change: dict[str, str]
) -> None:
    async with make_api(git_hosts=ALLOWED) as api:
        task = await _task(api)

        response = await api.client.patch(f"/api/v1/tasks/{task['id']}", json=change)

        assert response.status_code == 200, response.text
        assert response.json()["git_token_set"] is False
        assert (await api.client.get(f"/api/v1/tasks/{task['id']}")).json()["git_token_set"] is False
        assert await _stored_token(api, task["id"]) is None


async def test_a_new_token_with_the_change_is_kept(make_api: MakeApi) -> None:
    async with make_api(git_hosts=ALLOWED) as api:
        task = await _task(api)
        before = await _stored_token(api, task["id"])

        response = await api.client.patch(
            f"/api/v1/tasks/{task['id']}", json={"git_base_url": ENTERPRISE, "git_token": "ghe_N3wT0ken"}
        )

        assert response.status_code == 200, response.text
        assert response.json()["git_token_set"] is True
        assert await _stored_token(api, task["id"]) not in (None, before)


async def test_resending_the_same_target_or_changing_other_settings_keeps_the_token(
    make_api: MakeApi,
) -> None:
    async with make_api(git_hosts=ALLOWED) as api:
        task = await _task(api)
        url = f"/api/v1/tasks/{task['id']}"

        same = await api.client.patch(url, json={"git_repo": "myorg/myrepo", "git_base_branch": "develop"})

        assert same.status_code == 200, same.text
        assert same.json()["git_token_set"] is True


async def test_an_auto_pr_task_must_send_its_token_again_with_a_new_target(make_api: MakeApi) -> None:
    async with make_api(git_hosts=ALLOWED) as api:
        task = await _task(api, mode="auto_pr", prompt_path="prompts/summarize.txt")
        url = f"/api/v1/tasks/{task['id']}"

        body = assert_problem(await api.client.patch(url, json={"git_repo": "myorg/other"}), 422)

        assert body["errors"] == [
            {
                "field": "git_token",
                "message": "must be sent again in this request: changing git_provider, git_base_url or "
                "git_repo forgets the stored token, and mode auto_pr needs one",
            }
        ]
        resent = await api.client.patch(url, json={"git_repo": "myorg/other", "git_token": "ghp_Other0"})
        assert resent.status_code == 200 and resent.json()["git_token_set"] is True, resent.text
