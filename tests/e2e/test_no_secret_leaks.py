"""A task's Git token never appears in clear anywhere the system writes or answers.

The whole system runs as processes, logging at DEBUG (a scripted LLM so a real job
compiles, a fake GitHub for its pull request). A task gets a distinctive token, then another one through
``PATCH``, then traffic: feedback, an optimization, a PR that fails against a host that
echoes the token in its errors, and a retry that succeeds. Then we look for the tokens
in clear in every record of every topic of the system, every table and every byte of
every file under its home (read model with its ``-wal``, state stores, logs), every API
response, every request to the LLM and the pull request itself. Each place is also shown
to be searched for real: something that must be there (the token's ciphertext, a marker
planted in the feedback, ids) is found there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from cryptography.fernet import Fernet

from services.api.domain import TERMINAL_STATUSES
from tests.fakes.github import FakeGitHub
from tests.fakes.scripted_llm import ScriptedLLM, make_tickets
from tests.support.live import Live, live_system
from tests.support.system import TEST_SECRET_KEY

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(420),
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]

REPO = "acme/ticket-router"
PROMPT_PATH = "prompts/route.txt"
SMALL_RUN = {"auto": "light", "max_bootstrapped_demos": 2, "max_labeled_demos": 2, "metric": "exact_match"}

Haystack = dict[str, bytes]  # where → what was found there


def _canary(kind: str) -> str:
    return f"ghp_{kind}LeakCanary{uuid.uuid4().hex}"


class Recorder:
    """Every API response the test sees: status line, headers and body."""

    def __init__(self) -> None:
        self.seen: Haystack = {}

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        head = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        where = f"response #{len(self.seen)}: {request.method} {request.url} → {response.status_code}"
        self.seen[where] = head.encode() + b"\n\n" + response.content


class RecordingLLM(ScriptedLLM):
    """The scripted LLM, keeping every request it was sent (an LLM provider is a third party)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(json.dumps(body).encode())
        return super().complete(body)


@contextlib.contextmanager
def _github(token: str) -> Iterator[FakeGitHub]:
    host = FakeGitHub()
    host.start()
    host.add_repo(REPO, {PROMPT_PATH: "Route the ticket.\n"})
    host.add_token(token)
    try:
        yield host
    finally:
        host.stop()


async def _wait_for_status(http: httpx.AsyncClient, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = (await http.get(f"/api/v1/jobs/{job_id}")).json()
        if job["status"] in TERMINAL_STATUSES:
            return job
        await asyncio.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end within {timeout} s: {job}")


async def _drive(
    live: Live, host: FakeGitHub, tokens: dict[str, str], marker: str
) -> tuple[dict[str, str], Haystack]:
    """A user's traffic, with every way a token is given to the API; returns its ids and responses."""
    recorder = Recorder()
    async with httpx.AsyncClient(
        base_url=live.api_url,
        headers={"X-API-Key": live.key},
        timeout=120,
        event_hooks={"response": [recorder]},
    ) as http:
        task = {
            "name": "ticket-router",
            "schema_json": ["ticket"],
            "feedback_threshold": 1000,
            "evaluator_config": SMALL_RUN,
            "mode": "auto_pr",
            "git_provider": "github",
            "git_base_url": host.url,
            "git_repo": REPO,
            "git_token": tokens["created"],
            "prompt_path": PROMPT_PATH,
        }
        created = await http.post("/api/v1/tasks", json=task)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        assert created.json()["git_token_set"] is True
        duplicate = await http.post("/api/v1/tasks", json=task)
        assert duplicate.status_code == 409, duplicate.text
        misshapen = {"name": "other", "git_token": {"value": tokens["misshapen"]}}
        assert (await http.post("/api/v1/tasks", json=misshapen)).status_code == 422
        patched = await http.patch(f"/api/v1/tasks/{task_id}", json={"git_token": tokens["updated"]})
        assert patched.status_code == 200 and patched.json()["git_token_set"] is True, patched.text
        refused = await http.patch(
            f"/api/v1/tasks/{task_id}", json={"git_token": tokens["updated"], "feedback_threshold": 0}
        )
        assert refused.status_code == 422, refused.text

        for ticket, label in make_tickets(30, seed=3):
            inputs = {"ticket": f"{ticket} (ref {marker})"}
            body = {"task_id": task_id, "inputs": inputs, "output": label, "score": 0.9}
            assert (await http.post("/api/v1/feedback", json=body)).status_code == 201

        # The host echoes the token in its errors: first a retryable conflict, then a refusal.
        # Only on writes: the publisher also reads the prompt file after each token change, in
        # the background, and a late read must not take the failures meant for the PR.
        host.fail_next(
            409, {"message": f"reference already exists for token {tokens['updated']}"}, method="POST"
        )
        host.fail_next(
            403, {"message": f"Resource not accessible by token {tokens['updated']}"}, method="POST"
        )
        optimized = await http.post(f"/api/v1/optimize/{task_id}")
        assert optimized.status_code == 200, optimized.text
        job_id = optimized.json()["job"]["id"]
        failed = await _wait_for_status(http, job_id)
        assert failed["status"] == "PR_FAILED", failed
        retried = await http.post(f"/api/v1/jobs/{job_id}/retry-pr")
        assert retried.status_code == 200 and retried.json()["status"] == "SUCCESS", retried.text

        for path in (
            f"/api/v1/tasks/{task_id}",
            "/api/v1/tasks",
            f"/api/v1/jobs/{job_id}",
            f"/api/v1/jobs/{job_id}/events",
            f"/api/v1/jobs?task_id={task_id}",
            f"/api/v1/feedback?task_id={task_id}",
            f"/api/v1/prompts/{task_id}/versions",
            "/health",
            "/openapi.json",
        ):
            assert (await http.get(path)).status_code == 200, path
    return {"task": task_id, "job": job_id}, recorder.seen


async def _topics(live: Live) -> Haystack:
    """Every record (key, headers, value) of every topic of the system, from the beginning."""
    bootstrap = live.env["KAIZEN_KAFKA_BOOTSTRAP"]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(f"{live.prefix}.")]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, list[bytes]] = {name: [] for name in names}
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=500)).items():
                for r in records:
                    headers = b"".join(k.encode() + b"=" + v for k, v in r.headers)
                    found[tp.topic].append(b"\0".join([r.key or b"", headers, r.value or b""]))
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    assert found.get(f"{live.prefix}.tasks"), names
    return {f"topic {name}": b"\n".join(records) for name, records in found.items()}


def _tables(home: Path) -> Haystack:
    """Every row of every table of every SQLite database under ``home``, as text."""
    dumps: Haystack = {}
    for path in sorted(home.rglob("*.db")):
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for name in names:
                rows = db.execute(f'SELECT * FROM "{name}"').fetchall()  # noqa: S608 - our own table names
                dumps[f"table {path.name}:{name}"] = "\n".join(map(repr, rows)).encode()
    assert any(where.endswith("kaizen.db:tasks") for where in dumps), list(dumps)
    return dumps


def _files(home: Path, when: str) -> Haystack:
    """The raw bytes of every file under ``home`` (databases, their -wal and -shm, logs)."""
    return {
        f"file {p.relative_to(home)} ({when})": p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()
    }


def _where(haystack: Haystack, needle: str) -> list[str]:
    return [where for where, data in haystack.items() if needle.encode() in data]


def _ciphertext(home: Path, task_id: str) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{home / 'kaizen.db'}?mode=ro", uri=True)) as db:
        [(ciphertext,)] = db.execute("SELECT git_token_encrypted FROM tasks WHERE id = ?", (task_id,))
    return str(ciphertext)


async def test_git_tokens_never_appear_in_clear_anywhere_the_system_writes_sends_or_answers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    tokens = {kind: _canary(kind) for kind in ("created", "updated", "misshapen")}
    marker = f"planted-marker-{uuid.uuid4().hex}"
    home = tmp_path / "home"
    with RecordingLLM() as llm, _github(tokens["updated"]) as host:
        env = {
            "KAIZEN_LLM_API_BASE": llm.api_base,
            "KAIZEN_DEFAULT_TEACHER_MODEL": "openai/scripted",
            "KAIZEN_DEFAULT_JUDGE_MODEL": "openai/scripted",
            "KAIZEN_LOG_LEVEL": "DEBUG",  # the most a service ever writes to its log
        }
        with live_system(kafka_bootstrap, home, env=env) as live:
            ids, responses = await _drive(live, host, tokens, marker)
            running = _files(home, "running")
            assert any(where.startswith("file kaizen.db-wal") for where in running), list(running)
        [pull] = host.pulls(REPO)
        llm_requests = {"requests to the LLM": b"\n".join(llm.requests)}
        git: Haystack = {
            "the pull request": repr(pull).encode(),
            "the PR branch's prompt file": (
                host.file_at(REPO, pull["head"]["ref"], PROMPT_PATH) or ""
            ).encode(),
        }
    stopped = _files(home, "stopped")
    places = {
        **await _topics(live),
        **_tables(home),
        **running,
        **stopped,
        **responses,
        **llm_requests,
        **git,
    }

    for kind, token in tokens.items():
        assert not _where(places, token), f"the {kind} token is in clear in: {_where(places, token)}"

    # The search is real: what must be in each place is found there.
    ciphertext = _ciphertext(home, ids["task"])
    assert Fernet(TEST_SECRET_KEY).decrypt(ciphertext.encode()).decode() == tokens["updated"]
    encrypted = _where(places, ciphertext)
    assert {f"topic {live.prefix}.tasks", "table kaizen.db:tasks"} <= set(encrypted), encrypted
    planted = _where(places, marker)
    assert {"topic", "table", "file", "response"} <= {w.split(" ")[0] for w in planted}, planted
    assert any(w.startswith("file kaizen.db") for w in planted), planted  # the read model's raw bytes
    logs = {w for w in _where(places, ids["job"]) if w.startswith("file logs/")}
    assert {"file logs/api.log (stopped)", "file logs/pr-publisher.log (stopped)"} <= logs, logs
    assert "the pull request" in _where(places, ids["job"])  # its body names the job
    assert "requests to the LLM" in planted  # the feedback's inputs are the job's examples
