"""``kaizen replay --dry-run`` after the chaos, and a second API serving the rebuilt model.

The dry run rebuilds the read model from the log into a fresh database and compares it
with the live one row by row. A second API process on that rebuilt database must then
answer every read byte for byte like the live API does.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from tests.chaos.evidence import walk
from tests.support.broker import free_ports
from tests.support.supervised import Supervised


def dry_run(up: Supervised) -> tuple[subprocess.CompletedProcess[str], str | None]:
    """Run the dry run; return it and the rebuilt model's database URL (``None`` if not printed)."""
    done = subprocess.run(
        [sys.executable, "-m", "kaizen_cli.main", "replay", "--dry-run"],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(r"The rebuilt model is at (\S+)", done.stdout)
    return done, found.group(1) if found else None


@contextlib.contextmanager
def api_on(up: Supervised, db_url: str) -> Iterator[str]:
    """A second API process reading ``db_url``; yields its base URL."""
    [port] = free_ports(1)
    env = {**up.env, "KAIZEN_DATABASE_URL": db_url, "KAIZEN_API_PORT": str(port)}
    log = (up.home / "logs" / "replayed-api.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.api"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _answers(url, up.key):
            assert process.poll() is None and time.monotonic() < deadline, "the replayed API did not start"
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _answers(url: str, key: str) -> bool:
    try:
        return (
            httpx.get(f"{url}/api/v1/tasks?limit=1", headers={"X-API-Key": key}, timeout=2).status_code == 200
        )
    except httpx.TransportError:
        return False


def answer_paths(api: httpx.Client) -> list[str]:
    """Every page of every list, and every task's and job's own answers, as the live API lists them."""
    tasks, task_pages = walk(api, "/api/v1/tasks")
    jobs, job_pages = walk(api, "/api/v1/jobs")
    paths = ["/api/v1/keys", *task_pages, *job_pages, *walk(api, "/api/v1/feedback")[1]]
    for task in tasks:
        paths += [f"/api/v1/tasks/{task['id']}", f"/api/v1/prompts/{task['id']}/versions"]
        paths += walk(api, f"/api/v1/feedback?task_id={task['id']}")[1]
    for job in jobs:
        paths += [f"/api/v1/jobs/{job['id']}", f"/api/v1/jobs/{job['id']}/events"]
    return paths


def differing_answers(live: httpx.Client, replayed: httpx.Client, paths: list[str]) -> dict[str, Any]:
    """The paths whose answers differ (status or bytes), with the start of each answer."""
    differ: dict[str, Any] = {}
    for path in paths:
        a, b = live.get(path), replayed.get(path)
        if (a.status_code, a.content) != (b.status_code, b.content):
            differ[path] = {"live": (a.status_code, a.text[:300]), "replayed": (b.status_code, b.text[:300])}
    return differ
