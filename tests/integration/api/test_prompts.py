"""Prompt versions: the active one (404 before any), the list, activating a draft, and
registering the prompt the application runs today (through the API and `kaizen prompts`)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.prompts import PromptVersionCreated
from tests.integration.api.conftest import Api, assert_problem, read_log

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

VERSION_FIELDS = {
    "id",
    "task_id",
    "version_number",
    "prompt_text",
    "demos",
    "eval_score",
    "test_score",
    "status",
    "source",
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
    assert versions[0]["source"] == "job" and versions[0]["test_score"] is None
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


# --- registering the prompt the application runs today ------------------------------------

TEMPLATE = "Is the following text positive or negative? Answer with one word.\nText: {text}\nAnswer:"


async def _task(api: Api, contract: str, **settings: Any) -> str:
    body = {"name": f"sentiment-{contract}", "schema_json": ["text"], "prompt_contract": contract, **settings}
    response = await api.client.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_registered_prompt_becomes_the_active_user_version(api: Api) -> None:
    task_id = await _task(api, "template")
    base = f"/api/v1/prompts/{task_id}"
    response = await api.client.post(base, json={"prompt_text": TEMPLATE, "activate": True})
    assert response.status_code == 201, response.text
    version = response.json()
    assert set(version) == VERSION_FIELDS
    assert version["source"] == "user" and version["status"] == "active" and version["job_id"] is None
    assert version["prompt_text"] == TEMPLATE and version["version_number"] == 1
    assert (await api.client.get(base)).json() == version
    [event] = [
        e.data
        for e in map(codec.decode, await read_log(api.system.bootstrap, api.system.topics.tasks))
        if isinstance(e.data, PromptVersionCreated)
    ]
    assert event.source == "user" and str(event.prompt_version_id) == version["id"]


async def test_a_registration_without_activation_is_a_draft_beside_the_active_one(api: Api) -> None:
    task_id = await _task(api, "system")
    base = f"/api/v1/prompts/{task_id}"
    first = (await api.client.post(base, json={"prompt_text": "Label the sentiment."})).json()
    draft = await api.client.post(base, json={"prompt_text": "Label it.", "activate": False})
    assert draft.status_code == 201 and draft.json()["status"] == "draft"
    assert draft.json()["version_number"] == 2 and draft.json()["id"] != first["id"]
    assert (await api.client.get(base)).json()["id"] == first["id"]
    activated = await api.client.post(f"{base}/activate", params={"version_id": draft.json()["id"]})
    assert activated.status_code == 200 and activated.json()["source"] == "user"


async def test_a_template_with_an_unknown_placeholder_is_422_and_registers_nothing(api: Api) -> None:
    task_id = await _task(api, "template")
    base = f"/api/v1/prompts/{task_id}"
    problem = assert_problem(await api.client.post(base, json={"prompt_text": "Review: {review}"}), 422)
    assert problem["errors"][0]["field"] == "prompt_text"
    assert "{review}" in problem["detail"] and "not an input field" in problem["detail"]
    assert (
        "no {field} placeholder"
        in assert_problem(await api.client.post(base, json={"prompt_text": "Label the sentiment."}), 422)[
            "detail"
        ]
    )
    assert (await api.client.get(f"{base}/versions")).json() == []


@pytest.mark.parametrize(
    ("prompt_text", "reason"),
    [
        ("Label the sentiment of {text}.", "got a string"),
        ("- role: bot\n  content: '{text}'", "role 'bot'"),
        ('[{"role": "user", "content": "{text}"}', "neither valid JSON nor valid YAML"),
        ('[{"role": "system", "content": "Label {text}."}]', "no user message"),
    ],
)
async def test_malformed_messages_are_422_with_the_reason(api: Api, prompt_text: str, reason: str) -> None:
    task_id = await _task(api, "messages")
    response = await api.client.post(f"/api/v1/prompts/{task_id}", json={"prompt_text": prompt_text})
    assert reason in assert_problem(response, 422)["detail"]


async def test_registering_refuses_unknown_tasks_empty_text_and_unknown_fields(api: Api) -> None:
    task_id = await _task(api, "system")
    assert_problem(await api.client.post(f"/api/v1/prompts/{uuid.uuid4()}", json={"prompt_text": "x"}), 404)
    assert_problem(await api.client.post(f"/api/v1/prompts/{task_id}", json={"prompt_text": ""}), 422)
    assert_problem(await api.client.post(f"/api/v1/prompts/{task_id}", json={"prompt_text": "  "}), 422)
    extra = await api.client.post(f"/api/v1/prompts/{task_id}", json={"prompt_text": "x", "source": "job"})
    assert assert_problem(extra, 422)["errors"][0]["field"] == "source"


# --- `kaizen prompts push|pull` over HTTP ----------------------------------------------------


async def _kaizen(url: str, key: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "KAIZEN_URL": url, "KAIZEN_API_KEY": key}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kaizen_cli.main",
        "prompts",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_pushes_a_prompt_file_and_pulls_it_back_byte_for_byte(api: Api, tmp_path: Path) -> None:
    task_id = await _task(api, "template")
    prompt_file = tmp_path / "sentiment.txt"
    prompt_file.write_bytes((TEMPLATE + "\r\n").encode())
    async with api.served() as url:
        code, out, err = await _kaizen(url, api.key, "push", task_id, str(prompt_file))
        assert code == 0, err
        active = (await api.client.get(f"/api/v1/prompts/{task_id}")).json()
        assert active["id"] in out and active["source"] == "user"
        code, out, err = await _kaizen(url, api.key, "pull", task_id)
        assert code == 0, err
        assert out == TEMPLATE + "\r\n"
        draft = tmp_path / "draft.txt"
        draft.write_text("Sentence: {text}")
        code, out, _ = await _kaizen(url, api.key, "push", task_id, str(draft), "--no-activate")
        assert code == 0 and "draft" in out
        bad = tmp_path / "bad.txt"
        bad.write_text("Review: {review}")
        code, _, err = await _kaizen(url, api.key, "push", task_id, str(bad))
        assert code == 1 and "422" in err and "{review}" in err
        code, _, err = await _kaizen(url, "kaizen_" + "0" * 32, "pull", task_id)
        assert code == 1 and "401" in err and "KAIZEN_API_KEY" in err
