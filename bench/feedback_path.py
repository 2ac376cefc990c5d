"""The feedback write path end to end, beside a bare FastAPI endpoint, and the prompt read.

``POST /api/v1/feedback`` on the real API process answers 201 only once Kafka acknowledged
the append (acks=all) *and* the projector process applied it to the read model (SQLite).
The same client then drives a bare FastAPI app taking the same JSON body (validated by
the same model) under the same uvicorn settings, so the ratio is the price of durability
and read-your-writes. Both servers are processes of their own on free ports; the client
is httpx over real sockets, ``--concurrency`` clients at a time. Also timed: ``GET
/api/v1/prompts/{task_id}`` (the applications' hot path) with an active prompt version.

    .venv/bin/python -m bench.feedback_path [--requests 640] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import uvicorn
from cryptography.fernet import Fernet
from fastapi import FastAPI, Query

from bench.common import BOOTSTRAP_HEADER, BOOTSTRAP_TOKEN, REPO, broker, free_port, summary
from bench.scratch import add_keep, cleaned_up, scratch_dir
from services.api.schemas.feedback import FeedbackCreate
from services.api.schemas.jobs import JOB_EXAMPLE, JobResponse
from shared.events.envelope import Envelope
from shared.events.prompts import PromptVersionCreated
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventLog

PARTITIONS = 6
WARM_UP = 30
LOG_LEVEL = "WARNING"  # both servers: no access log, as a loaded production API would run
BARE_JOBS = 7  # as many jobs as bench.api_ratio puts in the real read model by default
TICKET = {"ticket": "I was charged twice for order 4711; please refund one payment."}


def bare_app(jobs: int = BARE_JOBS) -> FastAPI:
    """A trivial FastAPI app: the same body model as the API, nothing durable behind it.

    ``jobs``: how many jobs the read model it stands beside holds, so that a page of the job
    list has as many entries as the API's page (``min(limit, jobs)``). Each entry is the
    seed's ``JobResponse`` example until a benchmark ``PUT``s a real job (as the API answers
    it) to ``/bench/job``, so that both answers are about the same size.
    """
    app = FastAPI()
    example: dict[str, Any] = dict(JOB_EXAMPLE)

    @app.put("/bench/job", status_code=204)
    async def set_job(job: JobResponse) -> None:
        example.clear()
        example.update(job.model_dump(mode="json"))

    @app.post("/api/v1/feedback", status_code=201)
    async def feedback(body: FeedbackCreate) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), **body.model_dump(mode="json"), "created_at": datetime.now(UTC)}

    @app.get("/api/v1/prompts/{task_id}")
    async def prompt(task_id: uuid.UUID) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "task_id": str(task_id), "prompt_text": "Route the ticket."}

    @app.get("/api/v1/jobs")
    async def job_list(
        task_id: uuid.UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[JobResponse]:
        # The same response model as the API, so both pay for validating and serializing it.
        return [JobResponse.model_validate(example)] * min(limit, max(0, jobs - offset))

    @app.get("/api/v1/jobs/{job_id}")
    async def one_job(job_id: uuid.UUID) -> JobResponse:
        return JobResponse.model_validate(example | {"id": job_id})

    @app.get("/api/v1/tasks/{task_id}")
    async def task(task_id: uuid.UUID) -> dict[str, Any]:
        return {"id": str(task_id), "name": "bench", "feedback_count": 0, "created_at": datetime.now(UTC)}

    return app


def serve_bare(port: int, jobs: int = BARE_JOBS) -> None:
    """Run :func:`bare_app` exactly as ``services/api/__main__.py`` runs the API."""
    uvicorn.run(bare_app(jobs), host="127.0.0.1", port=port, log_level=LOG_LEVEL.lower(), log_config=None)


@dataclass(frozen=True)
class Services:
    """The running processes a benchmark talks to."""

    api_url: str
    bare_url: str
    api_pid: int  # for ``py-spy record --pid`` and CPU accounting (bench.cpu)
    projector_pid: int
    bare_pid: int


@contextlib.contextmanager
def processes(
    bootstrap: str, prefix: str, home: Path, db_url: str | None = None, bare_jobs: int = BARE_JOBS
) -> Iterator[Services]:
    """The API and the projector as ``kaizen serve`` runs them, and the bare app.

    ``db_url``: the read model (default: SQLite in ``home``); ``bare_jobs``: see :func:`bare_app`.
    """
    api_port, bare_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")},
        "KAIZEN_KAFKA_BOOTSTRAP": bootstrap,
        "KAIZEN_TOPIC_PREFIX": prefix,
        "KAIZEN_HOME": str(home),
        "KAIZEN_API_PORT": str(api_port),
        "KAIZEN_PARTITIONS": str(PARTITIONS),
        "KAIZEN_SECRET_KEY": Fernet.generate_key().decode(),
        "KAIZEN_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN,
        "KAIZEN_LOG_LEVEL": LOG_LEVEL,
    } | ({"KAIZEN_DATABASE_URL": db_url} if db_url else {})
    commands = {
        "projector": ["-m", "services.projector"],
        "api": ["-m", "services.api"],
        "bare": ["-m", "bench.feedback_path", "--serve-bare", str(bare_port), "--bare-jobs", str(bare_jobs)],
    }
    log = (home / "services.log").open("ab")
    by_name = {
        name: subprocess.Popen(
            [sys.executable, *args], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
        for name, args in commands.items()
    }
    started = list(by_name.values())
    try:
        yield Services(
            f"http://127.0.0.1:{api_port}",
            f"http://127.0.0.1:{bare_port}",
            by_name["api"].pid,
            by_name["projector"].pid,
            by_name["bare"].pid,
        )
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass
class Measured:
    latencies: list[float]
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    def __str__(self) -> str:
        return f"{self.rate:6.0f} req/s; {summary(self.latencies)}"


async def load(client: httpx.AsyncClient, call: Call, requests: int, clients: int, status: int) -> Measured:
    """``requests`` calls from ``clients`` concurrent clients (each waits for its answer, then goes on)."""
    for _ in range(WARM_UP):
        assert (await call(client)).status_code == status
    latencies: list[float] = []

    async def one_client(n: int) -> None:
        for _ in range(n):
            began = time.perf_counter()
            response = await call(client)
            latencies.append(time.perf_counter() - began)
            assert response.status_code == status, response.text

    started = time.perf_counter()
    await asyncio.gather(*(one_client(requests // clients) for _ in range(clients)))
    return Measured(latencies, time.perf_counter() - started)


def ratio(durable: Measured, bare: Measured) -> str:
    p50 = durable.percentile(0.5) / bare.percentile(0.5)
    p99 = durable.percentile(0.99) / bare.percentile(0.99)
    return f"throughput {durable.rate / bare.rate:.3f}x, p50 latency {p50:.1f}x, p99 latency {p99:.1f}x"


STARTUP_SECONDS = 60


async def until(call: Callable[[], Awaitable[httpx.Response]], status: int) -> httpx.Response:
    """Repeat ``call`` until it answers ``status`` (services still starting, a write not yet projected);
    after ``STARTUP_SECONDS``, return its last answer as it is."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        with contextlib.suppress(httpx.TransportError):
            response = await call()
            if response.status_code == status or time.monotonic() > deadline:
                return response
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer within {STARTUP_SECONDS} s")
        await asyncio.sleep(0.1)


async def active_prompt(client: httpx.AsyncClient, bootstrap: str, prefix: str, task_id: str) -> None:
    """A prompt version appended as the optimizer emits it, then activated through the API."""
    version = uuid.uuid4()
    log = EventLog(bootstrap, Topics(prefix), client_id="bench")
    try:
        event = PromptVersionCreated(
            prompt_version_id=version,
            task_id=uuid.UUID(task_id),
            job_id=uuid.uuid4(),
            prompt_text="Route by keyword: invoices and refunds go to finance; the rest to engineering.",
            demos=[{"ticket": "Please refund my last payment", "output": "finance"}],
            eval_score=0.9,
        )
        await log.append(Envelope.wrap(event, source="optimizer"))
    finally:
        await log.stop()
    path = f"/api/v1/prompts/{task_id}/activate"
    # 404 until the projector has applied the version.
    response = await until(lambda: client.post(path, params={"version_id": str(version)}), 200)
    response.raise_for_status()


async def run(bootstrap: str, requests: int, levels: list[int]) -> None:
    prefix = f"bench-feedback-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, Topics(prefix), partitions=PARTITIONS)
    home = scratch_dir("kaizen-bench-feedback-")
    limits = httpx.Limits(max_connections=max(levels) + 4, max_keepalive_connections=max(levels) + 4)
    with processes(bootstrap, prefix, home) as running:
        async with (
            httpx.AsyncClient(base_url=running.api_url, timeout=60, limits=limits) as api,
            httpx.AsyncClient(base_url=running.bare_url, timeout=60, limits=limits) as bare,
        ):
            await until(lambda: bare.get("/docs"), 200)
            # 504 until the projector has joined its group and applied the key.
            response = await until(
                lambda: api.post("/api/v1/keys/bootstrap", json={"name": "bench"}, headers=BOOTSTRAP_HEADER),
                201,
            )
            response.raise_for_status()
            api.headers["X-API-Key"] = response.json()["key"]
            task = {"name": "bench-feedback", "schema_json": ["ticket"], "feedback_threshold": 10**9}
            response = await api.post("/api/v1/tasks", json=task)
            response.raise_for_status()
            task_id = response.json()["id"]
            body = {"task_id": task_id, "inputs": TICKET, "output": "finance", "score": 0.9}
            print(
                f"{requests} requests per level after {WARM_UP} to warm up; API + projector + broker "
                f"(SQLite read model) vs a bare FastAPI endpoint, both uvicorn at log level {LOG_LEVEL}; "
                f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
                flush=True,
            )
            posted = 0
            for clients in levels:
                label = f"{clients:2d} client{'s' if clients > 1 else ' '}"
                durable = await load(
                    api, lambda c: c.post("/api/v1/feedback", json=body), requests, clients, 201
                )
                posted += WARM_UP + len(durable.latencies)
                plain = await load(
                    bare, lambda c: c.post("/api/v1/feedback", json=body), requests, clients, 201
                )
                print(f"POST /api/v1/feedback,     {label}, durable: {durable}", flush=True)
                print(f"POST /api/v1/feedback,     {label}, bare:    {plain}", flush=True)
                print(
                    f"POST /api/v1/feedback,     {label}, durable/bare: {ratio(durable, plain)}", flush=True
                )
            shown = (await api.get(f"/api/v1/tasks/{task_id}")).json()["feedback_count"]
            print(f"read model: {shown} of {posted} acknowledged feedback visible", flush=True)

            await active_prompt(api, bootstrap, prefix, task_id)
            path = f"/api/v1/prompts/{task_id}"
            for clients in levels:
                label = f"{clients:2d} client{'s' if clients > 1 else ' '}"
                read = await load(api, lambda c: c.get(path), requests, clients, 200)
                plain = await load(bare, lambda c: c.get(path), requests, clients, 200)
                print(f"GET /api/v1/prompts/{{id}}, {label}, active:  {read}", flush=True)
                print(f"GET /api/v1/prompts/{{id}}, {label}, bare:    {plain}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure the durable feedback write beside a bare endpoint.")
    parser.add_argument("--requests", type=int, default=640, help="Requests per concurrency level.")
    parser.add_argument(
        "--concurrency", default="1,16", help="Comma-separated numbers of concurrent clients."
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--bare-jobs", type=int, default=BARE_JOBS, help=argparse.SUPPRESS)
    add_keep(parser)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, args.bare_jobs)
        return
    levels = [int(n) for n in args.concurrency.split(",")]
    with cleaned_up(args.keep), broker() as bootstrap:
        asyncio.run(run(bootstrap, args.requests, levels))


if __name__ == "__main__":
    main()
