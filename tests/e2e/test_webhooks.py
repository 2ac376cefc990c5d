"""Webhooks as a downstream team sees them: a receiver gets every event of a real job, in order.

The whole system runs as processes (the webhooks service among them) against the real
broker; the job is a real optimization with the scripted LLM and a PR on the fake GitHub,
so the task holds a Git token. Mid-job the receiver goes down (connections refused), then
answers 503 for a while, and the webhooks service itself is SIGKILLed and restarted. The
receiver still ends with every job event exactly once after dedupe by ``webhook-id``, in
the job's own order, each with a valid signature, and never a byte of the token.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_optimization_jobs import create_task, only_job, post_tickets, scripted_env, wait_terminal
from tests.e2e.test_pull_requests import git_settings
from tests.fakes._server import FakeGitHost
from tests.fakes.git_host_contract import TOKEN, started_host
from tests.fakes.scripted_llm import ScriptedLLM
from tests.support import live as live_support
from tests.support.live import Live, live_system
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(400),
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]
SERVICES = ("projector", "optimizer", "pr-publisher", "webhooks", "api")


@pytest.fixture
def github() -> Iterator[FakeGitHost]:
    with started_host("github") as fake:
        yield fake


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setitem(live_support.MODULES, "webhooks", "services.webhooks")
    hooks = WebhookReceiver().start()
    try:
        yield hooks
    finally:
        hooks.stop()


def _wait(condition: Any, what: Any, live: Live, timeout: float = 240) -> None:
    """Wait for ``condition()``; ``what`` (a string, or a function making one) says what failed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out waiting for {described}\n{live.logs()}")
        time.sleep(0.1)


def _attempts(live: Live, webhook_id: str, status: int | None) -> list[dict[str, Any]]:
    """The subscription's retried attempts that ended with ``status`` (``None``: no answer)."""
    code, attempts = live.request("GET", f"/api/v1/webhooks/{webhook_id}/deliveries?limit=200")
    assert code == 200, attempts
    return [a for a in attempts if a["outcome"] == "retrying" and a["status_code"] == status]


def _cli(live: Live, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**live.env, "KAIZEN_URL": live.api_url, "KAIZEN_API_KEY": live.key, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "kaizen_cli.main", "webhooks", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done


def _the_cli_shows_and_manages_webhooks(
    live: Live, webhook_id: str, receiver: WebhookReceiver, n: int
) -> None:
    """``kaizen webhooks`` against the same system: the view, the list, a create and a delete."""
    shown = json.loads(_cli(live, "deliveries", webhook_id, "--limit", "200", "--json").stdout)
    assert len(shown) == n and {a["outcome"] for a in shown} == {"delivered", "retrying"}
    table = _cli(live, "deliveries", webhook_id, "--limit", "3").stdout
    assert "delivered" in table
    secret = _cli(live, "create", f"{receiver.url}/other", "--type", "kaizen.job.failed.v1").stdout.strip()
    assert secret.startswith("whsec_") and "\n" not in secret
    listed = json.loads(_cli(live, "list", "--json").stdout)
    [other] = [w for w in listed if w["id"] != webhook_id]
    assert other["types"] == ["kaizen.job.failed.v1"] and "secret" not in other
    assert secret not in _cli(live, "list").stdout
    _cli(live, "delete", other["id"])
    assert [w["id"] for w in json.loads(_cli(live, "list", "--json").stdout)] == [webhook_id]


def _of_job(events: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["data"].get("job_id") == job_id]


def test_a_receiver_gets_every_event_of_a_job_in_order_through_outages_and_never_the_token(
    kafka_bootstrap: str, tmp_path: Path, github: FakeGitHost, receiver: WebhookReceiver
) -> None:
    env = {
        "KAIZEN_WEBHOOK_HOSTS": receiver.origin,
        "KAIZEN_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "KAIZEN_WEBHOOK_BACKOFF_CAP_SECONDS": "1",
        "KAIZEN_WEBHOOK_MAX_ATTEMPTS": "100",
        "KAIZEN_METRICS_PORT_WEBHOOKS": "0",
    }
    with (
        ScriptedLLM() as llm,
        live_system(kafka_bootstrap, tmp_path, env={**scripted_env(llm), **env}, services=SERVICES) as live,
    ):
        status, created = live.request("POST", "/api/v1/webhooks", {"url": receiver.url})
        assert status == 201, created
        receiver.secret = created["secret"]
        task_id = create_task(live, **git_settings(github))
        post_tickets(live, task_id, 25)
        job_id = only_job(live, task_id)["id"]

        # The first event arrived: now the receiver goes away (connections refused) until an
        # attempt failed on it; then the service is SIGKILLed mid-retry, and the receiver
        # comes back answering 503 until the restarted service retried into that too.
        _wait(lambda: _of_job(receiver.accepted(), job_id), "the job's first delivery", live)
        receiver.stop()
        _wait(lambda: _attempts(live, created["id"], None), "an attempt on the stopped receiver", live, 60)
        live.stop("webhooks", signal.SIGKILL)
        receiver.fail = lambda _event: True
        receiver.start()
        live.start("webhooks")
        _wait(lambda: _attempts(live, created["id"], 503), "an attempt answered 503", live, 90)
        receiver.fail = lambda _event: False

        final, _ = wait_terminal(live, job_id)
        assert final["status"] == "SUCCESS", final
        status, history = live.request("GET", f"/api/v1/jobs/{job_id}/events")
        assert status == 200, history
        _wait(
            lambda: len(_of_job(receiver.accepted(), job_id)) >= len(history),
            lambda: (
                f"every event: got {[e['type'] for e in _of_job(receiver.accepted(), job_id)]}, "
                f"history {[e['type'] for e in history]}, {len(receiver.requests)} requests"
            ),
            live,
            120,
        )
        status, attempts = live.request("GET", f"/api/v1/webhooks/{created['id']}/deliveries?limit=200")
        assert status == 200, attempts
        _the_cli_shows_and_manages_webhooks(live, created["id"], receiver, len(attempts))

    received = _of_job(receiver.accepted(), job_id)
    # Exactly the job's history, in the log's order, each event once (deduplicated by webhook-id).
    assert [(e["type"], e["data"]) for e in received] == [(e["type"], e["data"]) for e in history]
    assert {"kaizen.job.started.v1", "kaizen.job.compiled.v1", "kaizen.pr.created.v1"} <= {
        e["type"] for e in received
    }
    assert all(r.verified for r in receiver.requests), "a delivery failed the documented verification"
    # The outage really happened: attempts without an answer or with a 503 were retried.
    failed = [a for a in attempts if a["outcome"] == "retrying"]
    assert failed and all(a["status_code"] in (None, 503) for a in failed), attempts
    assert not [a for a in attempts if a["outcome"] == "dead"], attempts
    # The task's Git token never reached the receiver, in any body or header.
    for request in receiver.requests:
        assert TOKEN.encode() not in request.body
        assert all(TOKEN not in value for value in request.headers.values())
