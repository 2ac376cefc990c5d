"""Optimization jobs as a user drives them: feedback over HTTP until the threshold fires,
then poll the job to its end. The LLM is the scripted test server, whose answers really
improve when the prompt teaches the task, so the scores can be asserted."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.scripted_llm import ScriptedLLM, make_tickets
from tests.support.live import Live, live_system

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]
TERMINAL = {"SUCCESS", "FAILED", "PR_FAILED"}
SMALL_RUN = {"auto": "light", "max_bootstrapped_demos": 2, "max_labeled_demos": 2, "metric": "exact_match"}


@pytest.fixture
def scripted() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as llm:
        yield llm


def scripted_env(llm: ScriptedLLM) -> dict[str, str]:
    return {
        "KAIZEN_LLM_API_BASE": llm.api_base,
        "KAIZEN_DEFAULT_TEACHER_MODEL": "openai/scripted",
        "KAIZEN_DEFAULT_JUDGE_MODEL": "openai/scripted",
    }


def create_task(live: Live, threshold: int = 25, **extra: Any) -> str:
    status, task = live.request(
        "POST",
        "/api/v1/tasks",
        {
            "name": f"tickets-{time.monotonic_ns()}",
            "schema_json": ["ticket"],
            "feedback_threshold": threshold,
            "evaluator_config": SMALL_RUN,
            **extra,
        },
    )
    assert status == 201, task
    return str(task["id"])


def post_tickets(live: Live, task_id: str, n: int, seed: int = 1) -> None:
    for text, label in make_tickets(n, seed=seed):
        status, body = live.request(
            "POST",
            "/api/v1/feedback",
            {"task_id": task_id, "inputs": {"ticket": text}, "output": label, "score": 0.9},
        )
        assert status == 201, body


def wait_terminal(live: Live, job_id: str, timeout: float = 240) -> tuple[dict[str, Any], list[str]]:
    """Poll like the seed's script does; return the final job and every status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = live.request("GET", f"/api/v1/jobs/{job_id}")
        assert status == 200, job
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in TERMINAL:
            return job, seen
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not terminal after {timeout} s; statuses {seen}\n{live.logs()}")


def only_job(live: Live, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, jobs = live.request("GET", f"/api/v1/jobs?task_id={task_id}")
        assert status == 200
        if jobs:
            assert len(jobs) == 1, jobs
            return dict(jobs[0])
        time.sleep(0.2)
    raise AssertionError(f"no job for task {task_id}")


def test_the_threshold_fires_one_job_that_improves_the_prompt_and_stores_it(
    kafka_bootstrap: str, tmp_path: Path, scripted: ScriptedLLM
) -> None:
    with live_system(kafka_bootstrap, tmp_path, env=scripted_env(scripted)) as live:
        task_id = create_task(live)
        post_tickets(live, task_id, 25)
        job = only_job(live, task_id)
        assert job["triggered_by"] == "auto_threshold"
        final, seen = wait_terminal(live, job["id"])
        assert final["status"] == "SUCCESS", final["error_message"]
        _, history = live.request("GET", f"/api/v1/jobs/{job['id']}/events")
        _, versions = live.request("GET", f"/api/v1/prompts/{task_id}/versions")
    types = [e["type"] for e in history]
    assert types[:4] == [
        "kaizen.job.requested.v1",
        "kaizen.job.started.v1",
        "kaizen.job.evaluating.v1",
        "kaizen.job.compiling.v1",
    ]
    assert types[-1] == "kaizen.job.succeeded.v1"
    assert seen[-1] == "SUCCESS"
    meta = final["job_metadata"]
    assert meta["export_score"] > meta["baseline_score"]
    assert meta["optimized_score"] > meta["baseline_score"]
    assert (meta["train_size"], meta["val_size"]) == (20, 5)
    assert meta["llm_calls"] == scripted.total_calls > 0
    assert meta["trials_completed"] >= 1 and meta["duration_seconds"] > 0
    assert final["feedback_count"] == 25 and final["prompt_version_id"] == versions[0]["id"]
    assert versions[0]["eval_score"] == meta["export_score"] and versions[0]["status"] == "draft"
    assert final["started_at"] and final["completed_at"] and final["progress_step"] == "completed"


def test_an_optimizer_killed_mid_compile_is_noticed_and_the_job_still_ends(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with (
        ScriptedLLM(delay=0.2) as slow,
        live_system(kafka_bootstrap, tmp_path, env=scripted_env(slow)) as live,
    ):
        task_id = create_task(live, threshold=1000)
        post_tickets(live, task_id, 25)
        status, answer = live.request("POST", f"/api/v1/optimize/{task_id}")
        assert status == 200, answer
        job_id = answer["job"]["id"]
        deadline = time.monotonic() + 120
        while live.request("GET", f"/api/v1/jobs/{job_id}")[1]["status"] != "COMPILING":
            assert time.monotonic() < deadline, live.logs()
            time.sleep(0.2)
        live.stop("optimizer", signal.SIGKILL)
        live.start("optimizer")
        final, _ = wait_terminal(live, job_id)
        _, history = live.request("GET", f"/api/v1/jobs/{job_id}/events")
    attempts = [e["data"]["attempt"] for e in history if e["type"] == "kaizen.job.started.v1"]
    assert attempts == [1, 2], attempts  # resumed as a new attempt, recorded in its events
    assert final["status"] == "SUCCESS", final["error_message"]


def test_cancelling_a_job_ends_it_failed_so_the_polling_loop_terminates(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with (
        ScriptedLLM(delay=0.2) as slow,
        live_system(kafka_bootstrap, tmp_path, env=scripted_env(slow)) as live,
    ):
        task_id = create_task(live, threshold=1000)
        post_tickets(live, task_id, 25)
        job_id = live.request("POST", f"/api/v1/optimize/{task_id}")[1]["job"]["id"]
        status, conflict = live.request("POST", f"/api/v1/optimize/{task_id}")
        assert status == 409 and conflict["status"] == 409
        status, body = live.request("POST", f"/api/v1/jobs/{job_id}/cancel")
        assert status == 202, body
        final, _ = wait_terminal(live, job_id, timeout=90)
        assert live.request("POST", f"/api/v1/jobs/{job_id}/cancel")[0] == 409
    assert final["status"] == "FAILED" and final["progress_step"] == "cancelled"
    assert "cancel" in final["error_message"]
