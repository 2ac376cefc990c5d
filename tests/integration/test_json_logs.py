"""One job followed through the four services' JSON logs with the jq filter of docs/operations.md.

Every service runs as its own process (``tests/support/live.py``) with JSON logs forced,
one job is asked for through the API and runs to SUCCESS against the scripted LLM and a
fake GitHub, and the documented filter picks that job's lines out of each log file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_optimization_jobs import create_task, post_tickets, scripted_env, wait_terminal
from tests.e2e.test_pull_requests import git_settings
from tests.fakes.git_host_contract import started_host
from tests.fakes.scripted_llm import ScriptedLLM
from tests.support.live import MODULES, live_system

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
    pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed"),
]
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_filter() -> str:
    """The jq program docs/operations.md shows for following a job."""
    match = re.search(r"jq -c '(select\(\.job_id == \"<job_id>\"\))'", OPERATIONS.read_text())
    assert match, "docs/operations.md no longer shows the jq filter for one job"
    return match[1]


def jq(program: str, log: Path) -> list[dict[str, Any]]:
    done = subprocess.run(["jq", "-c", program, str(log)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"jq failed on {log.name} (a line that is not JSON?): {done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_one_job_is_followed_across_all_four_services_logs_by_its_job_id(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with (
        started_host("github") as host,
        ScriptedLLM() as llm,
        live_system(
            kafka_bootstrap, tmp_path, env={**scripted_env(llm), "KAIZEN_LOG_FORMAT": "json"}
        ) as live,
    ):
        task_id = create_task(live, threshold=1000, **git_settings(host))
        post_tickets(live, task_id, 25)
        status, answer = live.request("POST", f"/api/v1/optimize/{task_id}")
        assert status == 200, answer
        job_id = answer["job"]["id"]
        final, _ = wait_terminal(live, job_id)
        assert final["status"] == "SUCCESS", final["error_message"]

        program = documented_filter().replace("<job_id>", job_id)
        found = {name: jq(program, live.home / "logs" / f"{name}.log") for name in MODULES}

    for name, lines in found.items():
        assert lines, f"no line of job {job_id} in {name}.log:\n{live.logs()}"
        assert {line["service"] for line in lines} == {name.replace("-", "_")}
        assert all(line["task_id"] == task_id for line in lines if "task_id" in line)
        assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    accepted = [line for line in found["api"] if line["message"].startswith("optimization accepted")]
    assert accepted and accepted[0]["request_id"], found["api"]
    assert any("PR" in line["message"] for line in found["pr-publisher"]), found["pr-publisher"]
