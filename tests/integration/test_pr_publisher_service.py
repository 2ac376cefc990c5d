"""The PR publisher service on a real broker, with the real clients against fake Git hosts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from services.pr_publisher.domain import branch_name
from services.pr_publisher.git_hosts import PrRequest, open_pull_request
from services.pr_publisher.prompt_files import read_prompt
from shared.events.envelope import Envelope
from shared.events.prs import PrRetryRequested
from shared.events.topics import Topics
from shared.git_policy import parse_allowlist
from shared.readmodel import tables as t
from tests.fakes._server import FakeGitHost, git_hosts
from tests.fakes.git_host_contract import PROMPT_FILES, REPO, TOKEN, started_host
from tests.support import events as ev
from tests.support.readmodel import rows, wait_for_job
from tests.support.system import TEST_SECRET_KEY, running_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TASK_NAME = "summarize-ticket"


@pytest.fixture(params=["github", "gitlab"])
def host(request: pytest.FixtureRequest) -> Iterator[FakeGitHost]:
    with started_host(request.param) as fake:
        yield fake


def auto_pr_task(host: FakeGitHost, fmt: str) -> Envelope:
    prompt = PROMPT_FILES[fmt]
    return ev.task_created(
        TASK_NAME,
        mode="auto_pr",
        git_provider=host.provider,
        git_base_url=host.url,  # type: ignore[attr-defined]
        git_repo=REPO,
        git_token_encrypted=Fernet(TEST_SECRET_KEY).encrypt(TOKEN.encode()).decode(),
        prompt_path=prompt.path,
        prompt_format=fmt,
        prompt_locator=prompt.locator,
    )


def compiled_job(task: Envelope) -> list[Envelope]:
    assert task.task_id is not None
    return ev.job_lifecycle(task.task_id, "publish")


async def _job(db_url: str, job_id: object, status: str) -> dict[str, Any]:
    return await wait_for_job(db_url, lambda j: j["status"] == status, id=str(job_id), timeout=60)


@pytest.mark.parametrize("fmt", list(PROMPT_FILES))
async def test_a_compiled_job_ends_success_with_its_pr_and_the_changed_file(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, host: FakeGitHost, fmt: str
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = auto_pr_task(host, fmt)
    job = compiled_job(task)
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
        await system.append(task, *job)
        done = await _job(db_url, job[0].job_id, "SUCCESS")
    [pull] = host.pulls(REPO)
    assert done["pr_url"] == (pull.get("html_url") or pull["web_url"])
    assert done["progress_step"] == "pr_created"
    branch = branch_name(TASK_NAME, str(job[0].job_id))
    content = host.file_at(REPO, branch, PROMPT_FILES[fmt].path)
    assert content is not None
    assert read_prompt(content, fmt, PROMPT_FILES[fmt].locator) == "Summarize."  # type: ignore[arg-type]
    assert host.file_at(REPO, "main", PROMPT_FILES[fmt].path) == PROMPT_FILES[fmt].content


async def test_retry_pr_fails_while_the_host_refuses_then_succeeds_with_one_pr(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, host: FakeGitHost
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = auto_pr_task(host, "json")
    job = compiled_job(task)
    ids = {"job_id": job[0].job_id, "task_id": job[0].task_id}
    host.refuse_pulls = True
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
        await system.append(task, *job)
        failed = await _job(db_url, ids["job_id"], "PR_FAILED")
        assert failed["error_message"]
        await system.append(Envelope.wrap(PrRetryRequested(**ids), source="api", correlation_id="retry-1"))
        outcome = await _outcome(db_url, "retry-1")
        assert outcome["outcome"] == "rejected" and outcome["detail"]
        host.refuse_pulls = False
        await system.append(Envelope.wrap(PrRetryRequested(**ids), source="api", correlation_id="retry-2"))
        assert (await _outcome(db_url, "retry-2"))["outcome"] == "accepted"
        done = await _job(db_url, ids["job_id"], "SUCCESS")
    assert len(host.pulls(REPO)) == 1
    assert done["pr_url"] and done["error_message"] is None


async def test_a_pr_opened_before_a_crash_is_reused_not_duplicated(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, host: FakeGitHost
) -> None:
    """The publisher died right after creating the PR, before ``PrCreated`` was written."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = auto_pr_task(host, "text")
    job = compiled_job(task)
    prompt = PROMPT_FILES["text"]
    open_pull_request(
        PrRequest(
            provider=host.provider,
            base_url=host.url,
            repo=REPO,
            base_branch=None,
            token=TOKEN,  # type: ignore[attr-defined]
            prompt_path=prompt.path,
            prompt_format="text",
            prompt_locator=None,
            branch=branch_name(TASK_NAME, str(job[0].job_id)),
            title="t",
            body="b",
            new_prompt="Summarize.",
            commit_message="m",
            job_id=str(job[0].job_id),
        ),
        allowed=parse_allowlist(git_hosts()),
        timeout=5,
    )
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "pr_publisher")) as system:
        await system.append(task, *job)
        await _job(db_url, job[0].job_id, "SUCCESS")
    assert len(host.pulls(REPO)) == 1
    history = await rows(db_url, t.job_events, job_id=str(job[0].job_id))
    created = [h for h in history if h["type"] == "kaizen.pr.created.v1"]
    assert created[0]["data"]["reused"] is True


async def _outcome(db_url: str, request_id: str) -> dict[str, Any]:
    import asyncio

    async with asyncio.timeout(60):
        while True:
            found = await rows(db_url, t.request_outcomes, request_id=request_id)
            if found:
                return found[0]
            await asyncio.sleep(0.1)
