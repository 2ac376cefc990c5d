"""Pull requests as a user sees them: a task in ``auto_pr`` mode ends SUCCESS with its PR, and
a refused PR is retried through ``POST /api/v1/jobs/{id}/retry-pr`` until it lands, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.pr_publisher.prompt_files import read_prompt
from tests.e2e.test_optimization_jobs import create_task, only_job, post_tickets, scripted_env, wait_terminal
from tests.fakes._server import FakeGitHost
from tests.fakes.git_host_contract import PROMPT_FILES, REPO, TOKEN, started_host
from tests.fakes.scripted_llm import ScriptedLLM
from tests.support.live import live_system

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]


@pytest.fixture(params=["github", "gitlab"])
def host(request: pytest.FixtureRequest) -> Iterator[FakeGitHost]:
    with started_host(request.param) as fake:
        yield fake


def git_settings(host: FakeGitHost, fmt: str = "yaml") -> dict[str, object]:
    prompt = PROMPT_FILES[fmt]
    return {
        "mode": "auto_pr",
        "git_provider": host.provider,
        "git_base_url": host.url,  # type: ignore[attr-defined]
        "git_repo": REPO,
        "git_token": TOKEN,
        "prompt_path": prompt.path,
        "prompt_format": fmt,
        "prompt_locator": prompt.locator,
    }


def test_an_auto_pr_task_ends_success_with_a_pr_holding_the_new_prompt(
    kafka_bootstrap: str, tmp_path: Path, host: FakeGitHost
) -> None:
    with ScriptedLLM() as llm, live_system(kafka_bootstrap, tmp_path, env=scripted_env(llm)) as live:
        task_id = create_task(live, **git_settings(host))
        post_tickets(live, task_id, 25)
        final, _ = wait_terminal(live, only_job(live, task_id)["id"])
        _, versions = live.request("GET", f"/api/v1/prompts/{task_id}/versions")
    assert final["status"] == "SUCCESS", final["error_message"]
    assert final["progress_step"] == "pr_created"
    [pull] = host.pulls(REPO)
    assert final["pr_url"] == (pull.get("html_url") or pull["web_url"])
    branch = pull["head"]["ref"] if "head" in pull else pull["source_branch"]
    changed = host.file_at(REPO, branch, PROMPT_FILES["yaml"].path)
    assert changed is not None
    assert read_prompt(changed, "yaml", PROMPT_FILES["yaml"].locator) == versions[0]["prompt_text"]
    assert "# owned by the support team" in changed and "model: gpt-4o  # pinned" in changed
    body = pull.get("body") or pull.get("description") or ""
    assert final["id"] in body and "baseline" in body.lower()


def test_retry_pr_answers_502_while_the_host_refuses_then_200_with_exactly_one_pr(
    kafka_bootstrap: str, tmp_path: Path, host: FakeGitHost
) -> None:
    host.refuse_pulls = True
    with ScriptedLLM() as llm, live_system(kafka_bootstrap, tmp_path, env=scripted_env(llm)) as live:
        task_id = create_task(live, **git_settings(host, "json"))
        post_tickets(live, task_id, 25)
        job_id = only_job(live, task_id)["id"]
        failed, _ = wait_terminal(live, job_id)
        assert failed["status"] == "PR_FAILED" and failed["error_message"], failed
        status, problem = live.request("POST", f"/api/v1/jobs/{job_id}/retry-pr")
        assert status == 502, problem
        assert problem["detail"] and problem["status"] == 502
        assert live.request("GET", f"/api/v1/jobs/{job_id}")[1]["status"] == "PR_FAILED"
        host.refuse_pulls = False
        status, job = live.request("POST", f"/api/v1/jobs/{job_id}/retry-pr")
        assert status == 200, job
        assert job["status"] == "SUCCESS" and job["pr_url"]
        assert live.request("POST", f"/api/v1/jobs/{job_id}/retry-pr")[0] == 409
    assert len(host.pulls(REPO)) == 1
