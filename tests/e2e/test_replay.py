"""``kaizen replay`` after a realistic history: the rebuilt read model answers byte for byte alike.

The history is made the way users and services make it: keys, tasks, feedback and seeds
through the live API; jobs appended to the log as the optimizer and the PR publisher emit
them (a success, a failure, a cancelled job, a PR that failed and was retried through
``retry-pr``, a PR opened at once). Every answer the API gives is kept as raw bytes; the
services are stopped; ``kaizen replay --dry-run`` must find the rebuilt model identical
and change nothing; ``kaizen replay`` rebuilds it again and swaps it in; the API, started
again on the swapped database, must give the same bytes for every answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy.engine import make_url

from shared.events import codec
from shared.events.envelope import Envelope, utcnow
from shared.events.jobs import JobFailed
from shared.events.prompts import PromptVersionCreated
from shared.events.prs import PrCreated
from shared.events.topics import Topics
from shared.kafka.producer import EventLog
from tests.support.events import job_lifecycle
from tests.support.live import Live, live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

#: live_system's heartbeat interval; replay refuses to swap while a projector beat within 3 of them.
HEARTBEAT_SECONDS = 1.0


@dataclass
class History:
    """What a client reads answers by."""

    tasks: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)


class Client:
    """The live API as an application uses it, and the log as the optimizer and publisher use it."""

    def __init__(self, live: Live, api: httpx.AsyncClient) -> None:
        self.live = live
        self.api = api
        self.bootstrap = live.env["KAIZEN_KAFKA_BOOTSTRAP"]
        self.topics = Topics(live.prefix)
        self.log = EventLog(self.bootstrap, self.topics, client_id="optimizer")

    async def ok(self, call: Awaitable[httpx.Response], status: int = 201) -> dict[str, object]:
        response = await call
        assert response.status_code == status, response.text
        body: dict[str, object] = response.json() if response.content else {}
        return body

    async def emit(self, *envelopes: Envelope) -> None:
        """Append as a service does: each event stamped when it is emitted."""
        await self.log.append_all([e.model_copy(update={"time": utcnow()}) for e in envelopes])

    async def until_status(self, job_id: uuid.UUID, status: str) -> None:
        async with asyncio.timeout(30):
            while (await self.api.get(f"/jobs/{job_id}")).json().get("status") != status:
                await asyncio.sleep(0.05)

    async def retry_request(self, job_id: uuid.UUID) -> Envelope:
        """Read the log as the PR publisher does until the job's retry request shows up."""
        consumer = AIOKafkaConsumer(
            self.topics.tasks, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                async for record in consumer:
                    envelope = codec.decode(record.value)
                    if envelope.type == "kaizen.pr.retry_requested.v1" and envelope.job_id == job_id:
                        return envelope
        finally:
            await consumer.stop()
        raise AssertionError("unreachable: the consumer stopped")


def job_of(chain: list[Envelope]) -> uuid.UUID:
    job_id = chain[0].job_id
    assert job_id is not None
    return job_id


async def keys_tasks_and_feedback(c: Client) -> tuple[uuid.UUID, uuid.UUID]:
    ci = await c.ok(c.api.post("/keys", json={"name": "ci-pipeline", "role": "admin"}))
    laptop = await c.ok(c.api.post("/keys", json={"name": "old laptop", "role": "read"}))
    await c.ok(c.api.delete(f"/keys/{laptop['id']}"), 204)
    c.api.headers["X-API-Key"] = str(ci["key"])

    task = {"name": "summarize-ticket", "schema_json": ["text"], "feedback_threshold": 20}
    summarize = uuid.UUID(str((await c.ok(c.api.post("/tasks", json=task)))["id"]))
    auto_pr = {
        "name": "classify-intent",
        "schema_json": ["message"],
        "mode": "auto_pr",
        "git_provider": "github",
        "git_repo": "myorg/myrepo",
        "git_base_branch": "main",
        "git_token": "ghp_NotARealToken0",
        "prompt_path": "prompts/intent.txt",
    }
    classify = uuid.UUID(str((await c.ok(c.api.post("/tasks", json=auto_pr)))["id"]))
    scratch = await c.ok(c.api.post("/tasks", json={"name": "scratch"}))
    await c.ok(c.api.delete(f"/tasks/{scratch['id']}"), 204)
    # Not here: creating "scratch" again. Its new id sits on another partition, and the
    # projector's name check then depends on the order a rebuild reads partitions in.
    changes = {"feedback_threshold": 30, "description": "One sentence per support ticket."}
    await c.ok(c.api.patch(f"/tasks/{summarize}", json=changes), 200)

    for i in range(12):
        item = {
            "task_id": str(summarize),
            "inputs": {"text": f"Ticket {i}: my invoice is wrong"},
            "output": f"Invoice problem {i}",
            "score": round(0.3 + i * 0.05, 2),
            "source": "user_rating" if i % 3 else "sdk",
        }
        await c.ok(c.api.post("/feedback", json=item))
    for i in range(6):
        item = {"task_id": str(classify), "inputs": {"message": f"cancel order {i}"}, "output": "cancel"}
        await c.ok(c.api.post("/feedback", json={**item, "score": 1.0, "metadata": {"n": i}}))
    seeds = "\n".join(
        json.dumps({"inputs": {"text": f"seed ticket {i}"}, "output": f"seed summary {i}"}) for i in range(25)
    )
    await c.ok(c.api.post(f"/tasks/{summarize}/seed", files={"file": ("seeds.jsonl", seeds.encode())}))
    return summarize, classify


async def jobs(c: Client, summarize: uuid.UUID, classify: uuid.UUID) -> list[uuid.UUID]:
    succeeded = job_lifecycle(summarize, "success")
    failed = job_lifecycle(summarize, "failed")
    await c.emit(*succeeded)
    await c.emit(*failed)

    cancelled = job_lifecycle(summarize, "failed")[:4]  # requested … compiling
    await c.emit(*cancelled)
    cancelled_id = job_of(cancelled)
    await c.until_status(cancelled_id, "COMPILING")
    await c.ok(c.api.post(f"/jobs/{cancelled_id}/cancel"), 202)
    stopped = JobFailed(job_id=cancelled_id, task_id=summarize, error_message="cancelled", kind="cancelled")
    await c.emit(Envelope.wrap(stopped, source="optimizer", causation=cancelled[-1]))

    pr_failed = job_lifecycle(classify, "pr_failed")
    await c.emit(*pr_failed)
    retried = job_of(pr_failed)
    await c.until_status(retried, "PR_FAILED")
    retry = asyncio.create_task(c.api.post(f"/jobs/{retried}/retry-pr"))
    request = await c.retry_request(retried)
    url = "https://github.com/myorg/myrepo/pull/7"
    opened = PrCreated(job_id=retried, task_id=classify, pr_url=url, number=7, branch=f"kaizen/{retried}")
    await c.emit(Envelope.wrap(opened, source="pr_publisher", causation=request))
    assert (await c.ok(retry, 200))["status"] == "SUCCESS"

    published = job_lifecycle(classify, "pr_created")
    await c.emit(*published)

    version = next(e.data.prompt_version_id for e in succeeded if isinstance(e.data, PromptVersionCreated))
    await c.ok(c.api.post(f"/prompts/{summarize}/activate", params={"version_id": str(version)}), 200)
    return [job_of(chain) for chain in (succeeded, failed, cancelled, pr_failed, published)]


async def until_projected(c: Client) -> None:
    """Until the projector has applied every record of the replayable topics."""
    async with asyncio.timeout(30):
        while True:
            health = (await c.api.get(c.live.api_url + "/health")).json()
            if health.get("projector", {}).get("lag") == 0:
                return
            await asyncio.sleep(0.1)


async def realistic_history(live: Live) -> History:
    base = live.api_url + "/api/v1"
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": live.key}, timeout=90) as api:
        c = Client(live, api)
        try:
            summarize, classify = await keys_tasks_and_feedback(c)
            job_ids = await jobs(c, summarize, classify)
            await until_projected(c)
        finally:
            await c.log.stop()
    return History(tasks=[str(summarize), str(classify)], jobs=[str(j) for j in job_ids])


def answer_paths(h: History) -> list[str]:
    paths = ["/api/v1/jobs", "/api/v1/jobs?limit=2&offset=1", "/api/v1/tasks", "/api/v1/tasks?limit=1"]
    paths += ["/api/v1/feedback?limit=200", "/api/v1/keys", f"/api/v1/prompts/{h.tasks[0]}"]
    for task in h.tasks:
        paths += [f"/api/v1/tasks/{task}", f"/api/v1/jobs?task_id={task}"]
        paths += [f"/api/v1/feedback?task_id={task}&limit=200", f"/api/v1/prompts/{task}/versions"]
    for job in h.jobs:
        paths += [f"/api/v1/jobs/{job}", f"/api/v1/jobs/{job}/events"]
    return paths


def answers(live: Live, paths: list[str]) -> dict[str, bytes]:
    """Each answer's raw body; every one of them a 200."""
    found: dict[str, bytes] = {}
    with httpx.Client(base_url=live.api_url, headers={"X-API-Key": live.key}, timeout=30) as client:
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            found[path] = response.content
    return found


def kaizen_replay(live: Live, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**live.env, "COLUMNS": "200"}  # rich wraps at 80 columns without a terminal
    return subprocess.run(
        [sys.executable, "-m", "kaizen_cli.main", "replay", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def database_identity(db_url: str) -> int:
    """The live database's own identity: the SQLite file's inode, the PostgreSQL database's oid."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return os.stat(str(url.database)).st_ino

    import asyncpg

    async def oid() -> int:
        admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        conn = await asyncpg.connect(admin)
        try:
            value: int = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = $1", url.database)
            return value
        finally:
            await conn.close()

    return asyncio.run(oid())


def start_api_again(live: Live, timeout: float = 60) -> None:
    live.start("api")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(live.api_url + "/health", timeout=5).status_code in (200, 503):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the API did not answer within {timeout} s:\n{live.logs()}")


def test_replay_swaps_in_a_rebuilt_model_whose_every_answer_is_byte_identical(
    kafka_bootstrap: str, db_url: str, tmp_path: Path
) -> None:
    with live_system(
        kafka_bootstrap, tmp_path / "home", db_url=db_url, services=("projector", "api")
    ) as live:
        history = asyncio.run(realistic_history(live))
        paths = answer_paths(history)
        before = answers(live, paths)
        live.stop("api")
        live.stop("projector")
        stopped = time.monotonic()
        original = database_identity(db_url)

        dry = kaizen_replay(live, "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "The rebuilt read model is identical to the live one." in dry.stdout, dry.stdout
        assert "Dry run: nothing swapped." in dry.stdout
        assert database_identity(db_url) == original

        # Replay refuses to swap under a projector that beat recently; this one is stopped.
        time.sleep(max(0.0, 3 * HEARTBEAT_SECONDS + 0.5 - (time.monotonic() - stopped)))
        swap = kaizen_replay(live)
        assert swap.returncode == 0, swap.stdout + swap.stderr
        assert "identical" in swap.stdout and "Swapped the rebuilt read model in" in swap.stdout, swap.stdout
        assert database_identity(db_url) != original  # the API below reads the rebuilt database

        start_api_again(live)
        after = answers(live, paths)

    changed = [path for path in paths if before[path] != after[path]]
    assert not changed, {p: (before[p][:300], after[p][:300]) for p in changed}
