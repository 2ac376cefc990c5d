"""The Jobs API page's polling script, run as its readers run it, against a live system.

The script below is the seed page's text unchanged; only the job id, the API key and the
base URL are substituted. The job's events are appended to the log as the optimizer and
the PR publisher emit them, each stage only after the script has printed the previous
status, so every status the page documents is seen in order, and the page's terminal
condition must end the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.events.envelope import Envelope, utcnow
from shared.events.topics import Topics
from shared.kafka.producer import EventLog
from tests.support.events import feedback, job_lifecycle
from tests.support.live import Live, live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# Verbatim from the Jobs API page, "Polling Pattern" (its indentation lost, as on the page).
SEED_SCRIPT = """#!/bin/bash
JOB_ID="f1e2d3c4-b5a6-7890-fedc-ba0987654321"
API_KEY="kaizen_abc123"
while true; do
STATUS=$(curl -s -H "X-API-Key: $API_KEY" \\
"http://localhost:8000/api/v1/jobs/$JOB_ID" | jq -r '.status')
echo "Status: $STATUS"
if [[ "$STATUS" == "SUCCESS" || "$STATUS" == "FAILED" || "$STATUS" == "PR_FAILED" ]]; then
break
fi
sleep 5
done
"""
PAGE_JOB_ID = "f1e2d3c4-b5a6-7890-fedc-ba0987654321"
PAGE_API_KEY = "kaizen_abc123"
PAGE_BASE_URL = "http://localhost:8000"

ACTIVE = ["PENDING", "RUNNING", "EVALUATING", "COMPILING"]
SCRIPT_DEADLINE_SECONDS = 150


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Projector and API as processes; no optimizer, the test plays it."""
    with live_system(
        kafka_bootstrap, tmp_path_factory.mktemp("polling"), services=("projector", "api")
    ) as running:
        yield running


def seed_script(job_id: uuid.UUID, api_key: str, base_url: str) -> str:
    """The page's script with its three placeholders replaced, and nothing else changed."""
    script = SEED_SCRIPT
    values = {PAGE_JOB_ID: str(job_id), PAGE_API_KEY: api_key, PAGE_BASE_URL: base_url}
    for placeholder, value in values.items():
        assert script.count(placeholder) == 1, placeholder
        script = script.replace(placeholder, value)
    return script


def stages(chain: list[Envelope]) -> list[list[Envelope]]:
    """A job's events grouped by the status each group leads to: PENDING … terminal."""
    return [chain[:1], chain[1:2], chain[2:3], chain[3:-1], chain[-1:]]


def emitted_now(envelope: Envelope) -> Envelope:
    """The event stamped when it is appended, as a service stamps what it emits."""
    return envelope.model_copy(update={"time": utcnow()})


def create_task(live: Live, name: str) -> uuid.UUID:
    status, task = live.request(
        "POST", "/api/v1/tasks", {"name": name, "schema_json": ["text"], "feedback_threshold": 5}
    )
    assert status == 201, task
    return uuid.UUID(task["id"])


def wait_until_visible(live: Live, job_id: uuid.UUID, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if live.request("GET", f"/api/v1/jobs/{job_id}")[0] == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} was not projected within {timeout} s:\n{live.logs()}")


async def play_the_job(
    log: EventLog, later_stages: list[list[Envelope]], printed: asyncio.Queue[str]
) -> None:
    """The optimizer (then the publisher): each next stage once the script has printed the last one."""
    for status, stage in zip(ACTIVE, later_stages, strict=True):
        while await printed.get() != f"Status: {status}":
            pass
        await asyncio.sleep(1)  # a stage takes a while; the script's next poll comes 5 s after its last
        await log.append_all([emitted_now(e) for e in stage])


async def run_script(path: Path, printed: asyncio.Queue[str]) -> tuple[int, list[str]]:
    script = await asyncio.create_subprocess_exec(
        "bash", str(path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert script.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(SCRIPT_DEADLINE_SECONDS):
            while line := await script.stdout.readline():
                lines.append(line.decode().rstrip("\n"))
                printed.put_nowait(lines[-1])
            return await script.wait(), lines
    except TimeoutError:
        message = f"the script did not end in {SCRIPT_DEADLINE_SECONDS} s; it printed {lines}"
        raise AssertionError(message) from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            script.kill()
        await script.wait()


def distinct_in_order(lines: list[str]) -> list[str]:
    """The printed lines without consecutive repeats (a status is printed once per poll)."""
    return [line for i, line in enumerate(lines) if i == 0 or lines[i - 1] != line]


@pytest.mark.parametrize(
    ("outcome", "terminal"), [("success", "SUCCESS"), ("failed", "FAILED"), ("pr_failed", "PR_FAILED")]
)
async def test_the_seed_polling_script_prints_each_status_and_stops_at_the_terminal_one(
    live: Live, tmp_path: Path, outcome: str, terminal: str
) -> None:
    task_id = create_task(live, f"summarize-{outcome}")
    for item in feedback(task_id, 3):
        data = item.data.model_dump(mode="json", include={"task_id", "inputs", "output", "score"})
        assert live.request("POST", "/api/v1/feedback", data)[0] == 201
    chain = job_lifecycle(task_id, outcome)
    job_id = chain[0].job_id
    assert job_id is not None
    requested, *later = stages(chain)
    log = EventLog(live.env["KAIZEN_KAFKA_BOOTSTRAP"], Topics(live.prefix), client_id="optimizer")
    printed: asyncio.Queue[str] = asyncio.Queue()
    optimizer: asyncio.Task[None] | None = None
    try:
        await log.append_all([emitted_now(e) for e in requested])
        wait_until_visible(live, job_id)
        path = tmp_path / "poll.sh"
        path.write_text(seed_script(job_id, live.key, live.api_url))
        optimizer = asyncio.create_task(play_the_job(log, later, printed))
        returncode, lines = await run_script(path, printed)
        await asyncio.wait_for(optimizer, 10)
    finally:
        if optimizer is not None and not optimizer.done():
            optimizer.cancel()
        await log.stop()

    assert returncode == 0, lines
    assert distinct_in_order(lines) == [f"Status: {s}" for s in [*ACTIVE, terminal]], lines
    assert lines[-1] == f"Status: {terminal}"
    status, job = live.request("GET", f"/api/v1/jobs/{job_id}")
    assert status == 200 and job["status"] == terminal, job
