"""``bench.api_ratio``'s read models: filled through the projector, served, and the routes wrk sends them.

Each (database, size) is its own read model on its own topic prefix, served by its own API
and projector processes beside a bare FastAPI app (``bench.feedback_path.processes``).
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.api_reads import History, fill_through_the_projector, job_history
from bench.common import BOOTSTRAP_HEADER, new_database
from bench.feedback_path import PARTITIONS, TICKET, Services, until
from bench.scratch import scratch_dir
from bench.wrk import Route
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.readmodel.db import create_schema, make_engine

IDS = 1000  # distinct job ids wrk cycles through for GET /api/v1/jobs/{id}


@dataclass
class Setup:
    """One read model under test: its database, how many jobs it holds, the processes serving it."""

    database: str  # "sqlite" or "postgresql"
    jobs: int
    db_url: str
    prefix: str
    home: Path
    history: History
    running: Services | None = None
    key: str = ""
    task_id: str = ""

    @property
    def label(self) -> str:
        return f"{self.database}, {self.jobs:,} jobs"


async def filled(bootstrap: str, database: str, jobs: int, server: str | None) -> Setup:
    """A new read model holding ``jobs`` job histories, folded by the projector from their own topics."""
    prefix = f"bench-ratio-{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    await ensure_topics(bootstrap, topics, partitions=PARTITIONS)
    home = scratch_dir("kaizen-bench-ratio-")
    if database == "sqlite":
        db_url = f"sqlite+aiosqlite:///{home / 'readmodel.db'}"
    else:
        assert server is not None
        db_url = await new_database(server, f"bench_ratio_{prefix.rsplit('-', 1)[1]}")
    engine = make_engine(db_url)
    try:
        await create_schema(engine)
    finally:
        await engine.dispose()
    history = History()
    tasks = max(1, min(1000, jobs // 100))
    print(f"{database}, {jobs:,} jobs over {tasks} tasks: filling through the projector", flush=True)
    await fill_through_the_projector(bootstrap, topics, db_url, job_history(history, jobs, tasks))
    return Setup(database, jobs, db_url, prefix, home, history)


async def prepare(setup: Setup) -> None:
    """A key and a task through the API; then one answer of each read route, to compare sizes."""
    assert setup.running is not None
    async with (
        httpx.AsyncClient(base_url=setup.running.api_url, timeout=60) as api,
        httpx.AsyncClient(base_url=setup.running.bare_url, timeout=60) as bare,
    ):
        await until(lambda: bare.get("/docs"), 200)
        response = await until(
            lambda: api.post("/api/v1/keys/bootstrap", json={"name": "bench"}, headers=BOOTSTRAP_HEADER), 201
        )
        response.raise_for_status()
        api.headers["X-API-Key"] = setup.key = response.json()["key"]
        task = {"name": "bench-ratio", "schema_json": ["ticket"], "feedback_threshold": 10**9}
        response = await api.post("/api/v1/tasks", json=task)
        response.raise_for_status()
        setup.task_id = response.json()["id"]
        job = f"/api/v1/jobs/{setup.history.jobs[-1]}"
        # The bare app answers with this real job from now on, so both answers are about the same size.
        real = await api.get(job)
        real.raise_for_status()
        headers = {"Content-Type": "application/json"}
        (await bare.put("/bench/job", content=real.content, headers=headers)).raise_for_status()
        for path in ["/api/v1/jobs?limit=50", job]:
            ours, theirs = await api.get(path), await bare.get(path)
            ours.raise_for_status()
            theirs.raise_for_status()
            print(
                f"{setup.label}: GET {path.replace(job, '/api/v1/jobs/{id}')} answers "
                f"{len(ours.content):,} bytes, bare {len(theirs.content):,} bytes",
                flush=True,
            )
        page = (await api.get("/api/v1/jobs", params={"limit": 50})).json()
        if len(page) != min(50, setup.jobs):
            raise RuntimeError(f"the job list shows {len(page)} jobs, not {min(50, setup.jobs)}")


def routes_for(setup: Setup, names: list[str]) -> list[Route]:
    feedback = {"task_id": setup.task_id, "inputs": TICKET, "output": "finance", "score": 0.9}
    ids = random.Random(11).sample(setup.history.jobs, min(IDS, len(setup.history.jobs)))
    every = {
        "feedback": Route(
            "POST /api/v1/feedback", "post-feedback", "POST", "/api/v1/feedback", json.dumps(feedback)
        ),
        "jobs": Route("GET /api/v1/jobs?limit=50", "get-jobs", "GET", "/api/v1/jobs?limit=50"),
        "job": Route(
            "GET /api/v1/jobs/{id}",
            "get-job",
            "GET",
            "/api/v1/jobs",
            paths=tuple(f"/api/v1/jobs/{j}" for j in ids),
        ),
        "task": Route("GET /api/v1/tasks/{id}", "get-task", "GET", f"/api/v1/tasks/{setup.task_id}"),
    }
    return [every[name] for name in names]
