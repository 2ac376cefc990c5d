"""The PR publisher's own checks, for tasks already in the log: defence in depth behind the API.

A task stored before the allowlist was tightened (or before prompt paths were checked)
must not make the publisher send its token anywhere; and what a host says reaches the
job's ``error_message`` only redacted and cut short.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from shared.events.envelope import Envelope
from shared.events.tasks import TaskUpdated
from shared.events.topics import Topics
from tests.fakes.git_host_contract import PROMPT_FILES, REPO, TOKEN, started_host
from tests.support import events as ev
from tests.support.readmodel import wait_for_job
from tests.support.system import TEST_SECRET_KEY, running_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _task(base_url: str, provider: str, prompt_path: str = PROMPT_FILES["text"].path) -> Envelope:
    return ev.task_created(
        "summarize-ticket",
        mode="auto_pr",
        git_provider=provider,
        git_base_url=base_url,
        git_repo=REPO,
        git_token_encrypted=Fernet(TEST_SECRET_KEY).encrypt(TOKEN.encode()).decode(),
        prompt_path=prompt_path,
        prompt_format="text",
    )


async def _failed_job(db_url: str, system: object, task: Envelope) -> dict[str, object]:
    """Append ``task`` (a task event) and a compiled job of that task; wait until it is PR_FAILED."""
    assert task.task_id is not None
    job = ev.job_lifecycle(task.task_id, "publish")
    await system.append(task, *job)  # type: ignore[attr-defined]
    return await wait_for_job(db_url, lambda j: j["status"] == "PR_FAILED", id=str(job[0].job_id), timeout=60)


@pytest.mark.parametrize("provider", ["github", "gitlab"])
async def test_a_stored_task_pointing_outside_the_allowlist_fails_without_a_request(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, provider: str
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
        # Started after the publisher, so the test support did not list it in its allowlist.
        with started_host(provider) as unlisted:
            failed = await _failed_job(db_url, system, _task(unlisted.url, provider))  # type: ignore[attr-defined]

            assert unlisted.count() == 0
    message = str(failed["error_message"])
    assert "token was not sent" in message and "KAIZEN_GIT_HOSTS" in message


async def test_a_stored_prompt_path_leaving_the_repository_fails_without_a_request(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    with started_host("github") as host:
        async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
            failed = await _failed_job(db_url, system, _task(host.url, "github", "../../etc/passwd"))  # type: ignore[attr-defined]

        assert host.count() == 0
    assert "'..'" in str(failed["error_message"])


async def test_host_error_text_reaches_the_job_redacted_and_cut_short(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    with started_host("gitlab") as host:
        host.fail_next(403, {"message": f"token {TOKEN} may not push; " + "padding " * 1000}, times=10)
        async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
            failed = await _failed_job(db_url, system, _task(host.url, "gitlab"))  # type: ignore[attr-defined]

    message = str(failed["error_message"])
    assert TOKEN not in message and "***" in message
    assert len(message) <= 500


async def test_a_task_whose_target_changed_without_a_new_token_sends_nothing(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    with started_host("github") as host:
        task = _task(host.url, "github")  # type: ignore[attr-defined]
        assert task.task_id is not None
        # What the API appends for a PATCH of git_repo that brings no new token.
        moved = TaskUpdated(
            task_id=task.task_id, changes={"git_repo": "acme/other", "git_token_encrypted": None}
        )
        async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
            await system.append(task)
            failed = await _failed_job(
                db_url, system, Envelope.wrap(moved, source="api", correlation_id="patch")
            )

        # Only the created task's prompt import may have read its file (GET, the old repo); the
        # moved target got nothing, and no PR was attempted.
        assert all(method == "GET" and "acme/other" not in path for method, path in host.requests)
    # Named as the API names it: a user sets git_token, never its ciphertext.
    assert str(failed["error_message"]).endswith("incomplete: set git_token")
