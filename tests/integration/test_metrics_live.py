"""Prometheus metrics of the running system: the API's ``/metrics`` and each worker's port.

Every service runs as its own process (``tests/support/live.py``) with its metrics on a
free port. One auto_pr job against the scripted LLM and a fake GitHub makes every
service do work, and each family shows it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_optimization_jobs import create_task, only_job, post_tickets, scripted_env, wait_terminal
from tests.e2e.test_pull_requests import git_settings
from tests.fakes.git_host_contract import started_host
from tests.fakes.scripted_llm import ScriptedLLM
from tests.support.broker import free_ports
from tests.support.early_answer import post_reading_early
from tests.support.live import Live, live_system

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]
# Labels up to the line's last brace: a route template label has braces of its own.
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    found = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        if all(f'{k}="{v}"' in (match["labels"] or "") for k, v in labels.items()):
            found += float(match["value"])
    return found


def wait_for(url: str, name: str, timeout: float = 30, **labels: str) -> str:
    """The scrape of ``url`` once ``name`` counts something (metrics lag the events they follow)."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(url)
        if total(text, name, **labels) > 0 or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_every_service_reports_the_work_of_one_published_job(kafka_bootstrap: str, tmp_path: Path) -> None:
    projector, optimizer, publisher = free_ports(3)
    ports = {
        "KAIZEN_METRICS_PORT_PROJECTOR": str(projector),
        "KAIZEN_METRICS_PORT_OPTIMIZER": str(optimizer),
        "KAIZEN_METRICS_PORT_PR_PUBLISHER": str(publisher),
    }
    with (
        started_host("github") as host,
        ScriptedLLM() as llm,
        live_system(kafka_bootstrap, tmp_path, env={**scripted_env(llm), **ports}) as live,
    ):
        settings: dict[str, Any] = git_settings(host)
        task_id = create_task(live, **settings)
        post_tickets(live, task_id, 25)
        body = json.dumps({"task_id": task_id, "output": "x" * 2_000_000}).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        headers["X-API-Key"] = live.key
        chunks = (body[i : i + 2**16] for i in range(0, len(body), 2**16))
        too_large, _, _ = post_reading_early(f"{live.api_url}/api/v1/feedback", chunks, headers)
        assert too_large == 413
        final, _ = wait_terminal(live, only_job(live, task_id)["id"])
        assert final["status"] == "SUCCESS", final["error_message"]

        _assert_api(live)
        _assert_projector(f"http://127.0.0.1:{projector}/metrics")
        _assert_optimizer(f"http://127.0.0.1:{optimizer}/metrics")
        _assert_publisher(f"http://127.0.0.1:{publisher}/metrics")


def _assert_api(live: Live) -> None:
    status, text = live.request("GET", "/metrics", key=None)
    assert status == 200
    feedback = {"method": "POST", "route": "/api/v1/feedback"}
    assert total(text, "kaizen_api_requests_total", status="201", **feedback) >= 25
    assert total(text, "kaizen_api_request_duration_seconds_count", status="201", **feedback) >= 25
    assert total(text, "kaizen_api_requests_total", route="/api/v1/jobs/{job_id}", status="200") > 0
    assert total(text, "kaizen_api_refusals_total", route="/api/v1/feedback", status="413") == 1
    assert task_id_free(text)


def task_id_free(text: str) -> bool:
    """No raw path (with an id) became a label."""
    return re.search(r'route="[^"]*[0-9a-f]{8}-[0-9a-f]{4}-', text) is None


def _assert_projector(url: str) -> None:
    text = wait_for(url, "kaizen_projector_records_total")
    assert total(text, "kaizen_projector_records_total") >= 27  # task, 25 feedback, job events
    assert total(text, "kaizen_projector_batches_total") > 0
    assert "# TYPE kaizen_projector_lag_records gauge" in text
    assert 'kaizen_projector_lag_records{partition="' in text
    assert "# TYPE kaizen_dead_letters_total counter" in text


def _assert_optimizer(url: str) -> None:
    text = wait_for(url, "kaizen_optimizer_jobs_total", status="compiled")
    assert total(text, "kaizen_optimizer_jobs_total", status="compiled") == 1
    assert total(text, "kaizen_optimizer_job_duration_seconds_count") == 1
    assert total(text, "kaizen_optimizer_trials_total") > 0
    model = {"model": "openai/scripted"}
    assert total(text, "kaizen_llm_calls_total", **model) > 0
    assert total(text, "kaizen_llm_tokens_total", kind="prompt", **model) > 0
    assert total(text, "kaizen_llm_tokens_total", kind="completion", **model) > 0
    assert "# TYPE kaizen_llm_cost_usd_total counter" in text


def _assert_publisher(url: str) -> None:
    text = wait_for(url, "kaizen_pr_outcomes_total")
    assert total(text, "kaizen_pr_outcomes_total", provider="github", outcome="created") == 1
