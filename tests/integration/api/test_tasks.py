"""Tasks: create (also racing), list with cursors, read, change, delete; the Git token stays secret."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet

from shared.events.envelope import Envelope
from shared.events.tasks import TaskCreated
from shared.readmodel.tables import tasks
from tests.integration.api.conftest import GIT_TOKEN, Api, MakeApi, assert_problem, read_log
from tests.support.system import TEST_SECRET_KEY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = GIT_TOKEN
AUTO_PR = {
    "mode": "auto_pr",
    "git_provider": "github",
    "git_repo": "myorg/myrepo",
    "git_token": TOKEN,
    "prompt_path": "prompts/summarize.txt",
}


async def test_created_task_shows_every_setting_but_the_token(api: Api) -> None:
    body = {"name": "Summarize-Ticket", "description": "one line", "schema_json": ["ticket"], **AUTO_PR}
    response = await api.client.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["name"] == "Summarize-Ticket" and task["schema_json"] == ["ticket"]
    assert (
        task["feedback_threshold"] == 50
        and task["module_type"] == "predict"
        and task["prompt_format"] == "text"
    )
    assert task["git_token_set"] is True and "git_token" not in task
    assert (
        task["feedback_count"] == 0
        and task["last_optimization"] is None
        and task["active_prompt_score"] is None
    )
    assert task["threshold_progress"] == {"progress": 0.0, "feedback_since_last_job": 0, "threshold": 50}
    assert task["created_at"].endswith("Z") and task["updated_at"].endswith("Z")
    same = await api.client.get(f"/api/v1/tasks/{task['id']}")
    assert same.json() == task
    listed = await api.client.get("/api/v1/tasks")
    for text in (response.text, same.text, listed.text):
        assert TOKEN not in text
    [row] = await api.table(tasks)
    assert Fernet(TEST_SECRET_KEY).decrypt(row.git_token_encrypted.encode()).decode() == TOKEN
    assert all(
        TOKEN.encode() not in value for value in await read_log(api.system.bootstrap, api.system.topics.tasks)
    )


async def test_names_are_unique_ignoring_case(api: Api) -> None:
    assert (await api.client.post("/api/v1/tasks", json={"name": "classify"})).status_code == 201
    body = assert_problem(await api.client.post("/api/v1/tasks", json={"name": " CLASSIFY "}), 409)
    assert "exists" in body["detail"]


async def test_two_racing_creates_of_one_name_give_201_and_409(api: Api) -> None:
    answers = await asyncio.gather(
        *(api.client.post("/api/v1/tasks", json={"name": "racer"}) for _ in range(2))
    )
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    assert_problem(next(r for r in answers if r.status_code == 409), 409)
    assert len((await api.client.get("/api/v1/tasks")).json()["items"]) == 1


async def test_auto_pr_without_git_settings_is_422_naming_them(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/tasks", json={"name": "t", "mode": "auto_pr", "git_repo": "o/r"}
    )
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["git_provider", "git_token", "prompt_path"]


async def test_pages_follow_the_cursor_newest_first_without_gaps(api: Api) -> None:
    created = [
        (await api.client.post("/api/v1/tasks", json={"name": f"task-{i}"})).json()["id"] for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.client.get("/api/v1/tasks", params=params)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))
    for params in ({"limit": 0}, {"limit": 201}, {"cursor": "garbage"}):
        assert_problem(await api.client.get("/api/v1/tasks", params=params), 422)


async def test_pages_are_stable_when_tasks_share_a_timestamp(api: Api) -> None:
    instant = datetime(2024, 1, 15, 10, 30, 0, 250000, tzinfo=UTC)
    created = [
        TaskCreated(task_id=uuid.uuid4(), name=f"same-{i}", request_id=uuid.uuid4().hex) for i in range(3)
    ]
    await api.seed(
        *(Envelope.wrap(e, source="api", correlation_id=e.request_id, time=instant) for e in created)
    )
    seen, cursor = [], None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = (await api.client.get("/api/v1/tasks", params=params)).json()
        seen += [(t["id"], t["created_at"]) for t in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert [i for i, _ in seen] == sorted((str(e.task_id) for e in created), reverse=True)
    assert {t for _, t in seen} == {"2024-01-15T10:30:00.250000Z"}


async def test_update_changes_only_what_is_sent_and_never_the_name(api: Api) -> None:
    task = (await api.client.post("/api/v1/tasks", json={"name": "t", "description": "old"})).json()
    url = f"/api/v1/tasks/{task['id']}"
    response = await api.client.patch(url, json={"description": "new", "feedback_threshold": 3})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["description"] == "new" and changed["feedback_threshold"] == 3 and changed["name"] == "t"
    assert changed["threshold_progress"]["threshold"] == 3 and changed["updated_at"] >= task["updated_at"]
    assert (await api.client.get(url)).json() == changed
    assert (
        assert_problem(await api.client.patch(url, json={"name": "other"}), 422)["errors"][0]["field"]
        == "name"
    )
    assert_problem(await api.client.patch(url, json={"feedback_threshold": None}), 422)
    assert_problem(await api.client.patch(url, json={"mode": "auto_pr"}), 422)
    with_git = await api.client.patch(url, json=AUTO_PR)
    assert (
        with_git.status_code == 200
        and with_git.json()["git_token_set"] is True
        and TOKEN not in with_git.text
    )
    assert_problem(await api.client.patch(f"/api/v1/tasks/{uuid.uuid4()}", json={"description": "x"}), 404)


async def test_deleted_task_is_gone_and_its_name_can_be_used_again(api: Api) -> None:
    first = (await api.client.post("/api/v1/tasks", json={"name": "reuse"})).json()
    deleted = await api.client.delete(f"/api/v1/tasks/{first['id']}")
    assert deleted.status_code == 204
    assert_problem(await api.client.get(f"/api/v1/tasks/{first['id']}"), 404)
    assert_problem(await api.client.delete(f"/api/v1/tasks/{first['id']}"), 404)
    again = await api.client.post("/api/v1/tasks", json={"name": "reuse"})
    assert again.status_code == 201 and again.json()["id"] != first["id"]


async def test_unknown_task_is_404_and_malformed_id_422(make_api: MakeApi) -> None:
    async with make_api() as api:
        assert_problem(await api.client.get(f"/api/v1/tasks/{uuid.uuid4()}"), 404)
        assert_problem(await api.client.get("/api/v1/tasks/not-a-uuid"), 422)


async def test_a_task_shows_its_prompt_contract_and_optimizer_with_their_defaults(api: Api) -> None:
    plain = (await api.client.post("/api/v1/tasks", json={"name": "plain"})).json()
    assert plain["prompt_contract"] == "system" and plain["optimizer"] == "mipro"
    body = {"name": "chosen", "schema_json": ["text"], "prompt_contract": "template", "optimizer": "gepa"}
    chosen = await api.client.post("/api/v1/tasks", json=body)
    assert chosen.status_code == 201, chosen.text
    assert chosen.json()["prompt_contract"] == "template" and chosen.json()["optimizer"] == "gepa"
    assert (await api.client.get(f"/api/v1/tasks/{chosen.json()['id']}")).json() == chosen.json()


async def test_an_unknown_prompt_contract_or_optimizer_is_422_naming_the_field(api: Api) -> None:
    for field, value in (("prompt_contract", "user"), ("optimizer", "bootstrap"), ("prompt_contract", None)):
        response = await api.client.post("/api/v1/tasks", json={"name": "t", field: value})
        assert assert_problem(response, 422)["errors"][0]["field"] == field
    assert (await api.client.get("/api/v1/tasks")).json()["items"] == []


async def test_the_prompt_contract_and_optimizer_can_be_changed_but_not_cleared(api: Api) -> None:
    task = (await api.client.post("/api/v1/tasks", json={"name": "t", "schema_json": ["text"]})).json()
    url = f"/api/v1/tasks/{task['id']}"
    changed = await api.client.patch(url, json={"prompt_contract": "messages", "optimizer": "gepa"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["prompt_contract"] == "messages" and changed.json()["optimizer"] == "gepa"
    assert (await api.client.get(url)).json() == changed.json()
    for field, value in (("prompt_contract", None), ("prompt_contract", "chat"), ("optimizer", None)):
        problem = assert_problem(await api.client.patch(url, json={field: value}), 422)
        assert problem["errors"][0]["field"] == field
    assert (await api.client.get(url)).json()["prompt_contract"] == "messages"


async def test_an_unknown_or_out_of_range_evaluator_setting_is_a_422_naming_it(api: Api) -> None:
    for config, words in (
        ({"metrik": "exact_match"}, "metrik: is not a setting"),
        ({"max_trials": 0}, "max_trials"),
        ({"metric": "regex", "metric_options": {"pattern": "("}}, "not a valid regular expression"),
    ):
        response = await api.client.post(
            "/api/v1/tasks",
            json={"name": f"t-{len(words)}", "schema_json": ["text"], "evaluator_config": config},
        )
        assert response.status_code == 422, response.text
        assert words in response.text
