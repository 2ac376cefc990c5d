"""Driving the running service through its public API, as a user does (for the job benchmarks).

The services run as processes (``tests.support.live.live_system``) in a fresh home
directory; every call here is an HTTP request with the bootstrapped key.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from bench.scratch import scratch_dir
from tests.support.live import Live, live_system

TERMINAL = {"SUCCESS", "FAILED", "PR_FAILED"}
INPUT_FIELD = "text"
POLL_SECONDS = 0.5

Rows = Sequence[tuple[str, str]]


@contextlib.contextmanager
def system(bootstrap: str, env: dict[str, str]) -> Iterator[Live]:
    """The four services as processes in a fresh home directory."""
    home = scratch_dir("kaizen-bench-job-")
    with live_system(bootstrap, home, env={"KAIZEN_LOG_LEVEL": "WARNING", **env}) as live:
        yield live


def create_task(live: Live, name: str, config: dict[str, Any], **settings: Any) -> str:
    """A task with one input field and a threshold the feedback never reaches (no automatic job)."""
    body = {
        "name": name,
        "schema_json": [INPUT_FIELD],
        "feedback_threshold": 100_000,
        "evaluator_config": config,
        **settings,
    }
    status, task = live.request("POST", "/api/v1/tasks", body)
    assert status == 201, task
    return str(task["id"])


def register_prompt(live: Live, task_id: str, text: str) -> dict[str, Any]:
    """The prompt the application runs today, as the active version (``source: "user"``)."""
    body = {"prompt_text": text, "activate": True}
    status, version = live.request("POST", f"/api/v1/prompts/{task_id}", body)
    assert status == 201, version
    return dict(version)


def post_feedback(live: Live, task_id: str, rows: Rows) -> None:
    """Each text with its gold label as a perfect-scored output."""
    for text, label in rows:
        body = {"task_id": task_id, "inputs": {INPUT_FIELD: text}, "output": label, "score": 1.0}
        status, answer = live.request("POST", "/api/v1/feedback", body)
        assert status == 201, answer


def optimize(live: Live, task_id: str) -> dict[str, Any]:
    """Ask for a job; return it as the API answered."""
    status, answer = live.request("POST", f"/api/v1/optimize/{task_id}")
    assert status == 200, answer
    return dict(answer["job"])


def wait_terminal(
    live: Live, job_id: str, timeout: float, poll: float = POLL_SECONDS
) -> tuple[dict[str, Any], float]:
    """Poll the job until it ends; return it and the moment the terminal status was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = live.request("GET", f"/api/v1/jobs/{job_id}")
        assert status == 200, job
        if job["status"] in TERMINAL:
            return dict(job), time.monotonic()
        time.sleep(poll)
    raise TimeoutError(f"job {job_id} not finished after {timeout:g} s\n{live.logs()}")


def job_prompt(live: Live, task_id: str, job_id: str) -> str | None:
    """The prompt version the job stored (``GET /api/v1/prompts/{task_id}/versions``), if any."""
    status, versions = live.request("GET", f"/api/v1/prompts/{task_id}/versions")
    assert status == 200, versions
    mine = [v for v in versions if str(v.get("job_id")) == job_id]
    return str(mine[0]["prompt_text"]) if mine else None
