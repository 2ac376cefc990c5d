"""Importing a task's prompt file: the PR publisher on a real broker, real clients, fake Git hosts.

When a task is created with Git settings, or they change, the file's prompt becomes the
task's active prompt (``source: "repository"``), the baseline its next job must beat. A file
that cannot be imported activates nothing, says why in a ``PromptImportAttempted``, and the
publisher carries on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.prompts import PromptImportAttempted
from shared.events.tasks import TaskUpdated
from shared.events.topics import Topics
from shared.readmodel import tables as t
from tests.fakes._server import FakeGitHost
from tests.fakes.git_host_contract import PROMPT_FILES, REPO, TOKEN, started_host
from tests.integration.api.conftest import read_log
from tests.support import events as ev
from tests.support.readmodel import rows
from tests.support.system import TEST_SECRET_KEY, System, running_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TEXT = PROMPT_FILES["text"]
JSON = PROMPT_FILES["json"]


@pytest.fixture(params=["github", "gitlab"])
def host(request: pytest.FixtureRequest) -> Iterator[FakeGitHost]:
    with started_host(request.param) as fake:
        yield fake


def encrypted(token: str = TOKEN) -> str:
    return Fernet(TEST_SECRET_KEY).encrypt(token.encode()).decode()


def git_task(host: FakeGitHost, **settings: Any) -> Envelope:
    git = {
        "git_provider": host.provider,  # type: ignore[attr-defined]
        "git_base_url": host.url,  # type: ignore[attr-defined]
        "git_repo": REPO,
        "git_token_encrypted": encrypted(),
        "prompt_path": TEXT.path,
    }
    return ev.task_created("summarize-ticket", **{**git, **settings})


def updated(task: Envelope, **changes: Any) -> Envelope:
    assert task.task_id is not None
    return Envelope.wrap(TaskUpdated(task_id=task.task_id, changes=changes), source="api")


async def versions(db_url: str, task: Envelope) -> list[dict[str, Any]]:
    found = await rows(db_url, t.prompt_versions, task_id=str(task.task_id))
    return sorted(found, key=lambda v: v["version_number"])


async def outcome_envelopes(system: System, task: Envelope, count: int) -> list[Envelope]:
    """The task's import outcomes in log order, once there are at least ``count``."""
    async with asyncio.timeout(60):
        while True:
            found = [
                e
                for raw in await read_log(system.bootstrap, system.topics.tasks)
                if isinstance((e := codec.decode(raw)).data, PromptImportAttempted)
                and e.task_id == task.task_id
            ]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.2)


async def outcomes(system: System, task: Envelope, count: int) -> list[PromptImportAttempted]:
    return [e.data for e in await outcome_envelopes(system, task, count)]  # type: ignore[misc]


async def versions_once(db_url: str, task: Envelope, count: int) -> list[dict[str, Any]]:
    """The task's versions once the projector has stored ``count`` with the newest active.

    An import's outcome event is appended after its version and activation, but a test
    that saw the outcome in the log may still be ahead of the projector.
    """
    async with asyncio.timeout(60):
        while True:
            found = await versions(db_url, task)
            if len(found) >= count and found[-1]["status"] == "active":
                return found
            await asyncio.sleep(0.1)


async def active(db_url: str, task: Envelope) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            found = [v for v in await versions(db_url, task) if v["status"] == "active"]
            if found:
                return found[0]
            await asyncio.sleep(0.1)


async def test_created_task_gets_its_files_prompt_as_the_active_repository_version(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, host: FakeGitHost
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = git_task(host)
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
        await system.append(task)
        [outcome] = await outcomes(system, task, 1)
        version = await active(db_url, task)
    assert (version["prompt_text"], version["source"], version["job_id"]) == (
        "You summarize support tickets.",
        "repository",
        None,
    )
    assert outcome.outcome == "imported"
    assert (outcome.prompt_version_id, outcome.branch) == (uuid.UUID(version["id"]), "main")
    assert host.count() == host.count("GET")  # an import only reads


async def test_changed_prompt_path_is_imported_again_and_the_old_version_archived(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, host: FakeGitHost
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = git_task(host)
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
        await system.append(task)
        await outcomes(system, task, 1)
        await system.append(
            updated(task, prompt_path=JSON.path, prompt_format="json", prompt_locator=JSON.locator)
        )
        second = (await outcomes(system, task, 2))[1]
        listed = await versions_once(db_url, task, 2)
    assert second.outcome == "imported"
    assert [(v["prompt_text"], v["status"], v["source"]) for v in listed] == [
        ("You summarize support tickets.", "archived", "repository"),
        ("OLD", "active", "repository"),
    ]


async def test_a_missing_file_activates_nothing_and_the_publisher_carries_on(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, host: FakeGitHost
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = git_task(host, prompt_path="prompts/missing.txt")
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
        await system.append(task)
        [failed] = await outcomes(system, task, 1)
        assert await versions(db_url, task) == []
        # The file appears; pointing the task at it again imports it.
        host.commit_file(REPO, "main", "prompts/missing.txt", "You summarize tickets.\n")
        await system.append(updated(task, git_token_encrypted=encrypted()))
        fixed = (await outcomes(system, task, 2))[1]
        version = await active(db_url, task)
    assert failed.outcome == "failed" and not failed.retryable
    assert failed.reason is not None
    assert "prompt file prompts/missing.txt not found on branch main" in failed.reason
    assert TOKEN not in failed.reason
    assert fixed.outcome == "imported"
    assert version["prompt_text"] == "You summarize tickets."


async def test_a_prompt_invalid_under_the_contract_is_not_activated(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, host: FakeGitHost
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = git_task(host, prompt_contract="template", input_schema=["ticket"])
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
        await system.append(task)
        [failed] = await outcomes(system, task, 1)
        assert await versions(db_url, task) == []
    assert failed.outcome == "failed"
    assert failed.reason is not None and "is not a valid 'template' prompt" in failed.reason


async def test_same_file_again_changes_nothing_and_unrelated_changes_read_nothing(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, host: FakeGitHost
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = git_task(host)
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
        await system.append(task)
        await outcomes(system, task, 1)
        await active(db_url, task)
        threshold, token = updated(task, feedback_threshold=7), updated(task, git_token_encrypted=encrypted())
        await system.append(threshold, token)
        second = (await outcome_envelopes(system, task, 2))[1]
        listed = await versions(db_url, task)
    assert second.data.outcome == "unchanged"  # type: ignore[attr-defined]
    # The outcome answers the token change; the threshold change read nothing.
    assert second.causation_id == str(token.id)
    assert len(listed) == 1 and listed[0]["status"] == "active"
