"""Read latency of the jobs and prompt endpoints over a read model of 100,000 jobs.

The read model is filled honestly, through the projector's own fold. Realistic job
histories (requested → started → evaluating → compiling → trials → prompt version →
compiled → SUCCESS, FAILED, or a PR opened or failed; prompt activations) over a
thousand tasks with feedback are

- ``--fill projector`` (default): appended to a fresh topic prefix as the optimizer, the
  PR publisher and the API emit them, then folded by the projector service (consumer
  group, offsets stored with the rows), which measures the projection's throughput;
- ``--fill apply``: encoded and decoded as on the wire, then handed to the projector's
  ``Projection.apply`` in per-partition batches of 500, without Kafka. It measures the
  fold alone.

``bench.api_ratio --jobs 100000`` reuses this fill (``job_history``,
``fill_through_the_projector``) and times the same reads with wrk beside a bare app; this
module's sequential Python client times single requests, not throughput.

The API then runs in this process under uvicorn on a free port: requests go over a real
socket, one at a time, from an httpx client in the same event loop (its own overhead,
a fraction of a millisecond, is included). Access logs are off.

    .venv/bin/python -m bench.api_reads [--jobs 100000] [--tasks 1000] [--requests 300]
        [--db-url postgresql+asyncpg://…/an_empty_database] [--fill projector|apply]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from aiokafka.partitioner import DefaultPartitioner
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select

from bench.common import BOOTSTRAP_HEADER, BOOTSTRAP_TOKEN, broker, free_port, summary
from bench.scratch import add_keep, cleaned_up, scratch_dir
from services.api.main import create_app
from services.projector.bootstrap import run_projector
from services.projector.projection import Projection
from shared.events import codec
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.events.jobs import (
    JobCompiled,
    JobCompiling,
    JobEvaluating,
    JobFailed,
    JobRequested,
    JobStarted,
    JobSucceeded,
    JobTrialCompleted,
)
from shared.events.prompts import PromptActivated, PromptVersionCreated
from shared.events.prs import PrCreated, PrFailed
from shared.events.tasks import TaskCreated
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import Delivery
from shared.kafka.producer import EventLog
from shared.readmodel.db import create_schema, make_engine
from shared.readmodel.tables import projector_offsets
from shared.settings import Settings

PARTITIONS = 6
CHUNK = 5000  # events generated and appended at a time
BATCH = 500  # the projector's own batch size (EventConsumer.max_batch)
PROMPT = "Summarize the support ticket in one sentence.\n\nTicket: {text}\nSummary:"
OUTCOMES = ["success"] * 14 + ["failed"] * 4 + ["pr_created", "pr_failed"]


@dataclass
class History:
    """What a generated history holds that a client asks for."""

    tasks: list[uuid.UUID] = field(default_factory=list)
    jobs: list[uuid.UUID] = field(default_factory=list)
    with_active_prompt: set[uuid.UUID] = field(default_factory=set)
    events: int = 0


class Writer:
    """Emits events stamped by a simulated clock, a few seconds apart, as the services would."""

    def __init__(self, history: History, start: datetime, rng: random.Random) -> None:
        self.history = history
        self.now = start
        self.rng = rng
        self.buffer: list[Envelope] = []

    def emit(
        self, event: Event, source: str, cause: Envelope | None = None, rid: str | None = None
    ) -> Envelope:
        self.now += timedelta(seconds=self.rng.uniform(0.5, 3.0))
        envelope = Envelope.wrap(event, source=source, causation=cause, correlation_id=rid, time=self.now)
        self.buffer.append(envelope)
        self.history.events += 1
        return envelope

    def take(self) -> list[Envelope]:
        taken, self.buffer = self.buffer, []
        return taken


def add_task(w: Writer, n: int) -> uuid.UUID:
    task = TaskCreated(
        task_id=uuid.uuid4(),
        name=f"task-{n:05d}",
        description="Summarize a support ticket in one sentence.",
        input_schema=["text"],
        feedback_threshold=50,
        request_id=uuid.uuid4().hex,
    )
    w.emit(task, "api", rid=task.request_id)
    w.history.tasks.append(task.task_id)
    return task.task_id


def add_feedback(w: Writer, task_id: uuid.UUID, n: int) -> None:
    for i in range(n):
        text = f"Ticket {i}: the invoice for order {w.rng.randrange(10**6)} shows the wrong amount."
        item = FeedbackRecorded(
            feedback_id=uuid.uuid4(),
            task_id=task_id,
            inputs={"text": text},
            output="The customer reports a wrong invoice amount.",
            score=round(w.rng.random(), 2),
        )
        w.emit(item, "api", rid=uuid.uuid4().hex)


def add_job(w: Writer, task_id: uuid.UUID, offset: int, outcome: str, trials: int = 2) -> uuid.UUID:
    """One job as the optimizer and publisher emit it; ``outcome``: success, failed, pr_created, pr_failed."""
    job_id, version_id = uuid.uuid4(), uuid.uuid4()
    ids = {"job_id": job_id, "task_id": task_id}
    feedback = w.rng.randint(50, 400)
    train = int(feedback * 0.8)
    chain: list[Envelope] = []

    def emit(event: Event, source: str = "optimizer") -> None:
        chain.append(w.emit(event, source, chain[-1] if chain else None, None if chain else str(job_id)))

    emit(JobRequested(**ids, triggered_by="auto_threshold", feedback_count=feedback, log_offset=offset))
    models = {"teacher_model": "openai/gpt-4o", "judge_model": "openai/gpt-4o-mini"}
    emit(JobStarted(**ids, worker="optimizer-1", **models))
    sizes = {"train_size": train, "val_size": feedback - train, "dataset_hash": uuid.uuid4().hex * 2}
    emit(JobEvaluating(**ids, feedback_count=feedback, seed_count=0, **sizes))
    baseline = round(w.rng.uniform(0.3, 0.7), 3)
    emit(JobCompiling(**ids, baseline_score=baseline))
    if outcome == "failed":
        error = "the LLM endpoint answered 429 Too Many Requests for 10 minutes"
        emit(JobFailed(**ids, error_message=error, kind="llm_unreachable"))
        return job_id
    best, calls, cost = baseline, 0, 0.0
    for trial in range(1, trials + 1):
        score = round(w.rng.uniform(baseline, 0.95), 3)
        best, calls, cost = max(best, score), calls + 40, round(cost + 0.02, 4)
        progress = {"score": score, "best_score": best, "llm_calls": calls, "cost_usd": cost}
        emit(JobTrialCompleted(**ids, trial=trial, total_trials=trials, **progress))
    scores = {"eval_score": best, "baseline_score": baseline, "optimized_score": best}
    emit(PromptVersionCreated(prompt_version_id=version_id, **ids, prompt_text=PROMPT, **scores))
    meta = {
        "trials_completed": trials,
        "duration_seconds": round(w.rng.uniform(60, 600), 1),
        "cost_usd": cost,
    }
    emit(JobCompiled(**ids, prompt_version_id=version_id, job_metadata=meta, publish=outcome != "success"))
    if outcome == "success":
        emit(JobSucceeded(**ids))
    elif outcome == "pr_created":
        number = w.rng.randrange(1, 10**5)
        url = f"https://github.com/myorg/myrepo/pull/{number}"
        emit(PrCreated(**ids, pr_url=url, number=number, branch=f"kaizen/{job_id}"), "pr_publisher")
    else:
        emit(PrFailed(**ids, reason="the Git token was rejected (401)", retryable=False), "pr_publisher")
    if outcome != "pr_failed" and (task_id not in w.history.with_active_prompt or w.rng.random() < 0.2):
        w.emit(PromptActivated(task_id=task_id, prompt_version_id=version_id), "api", rid=uuid.uuid4().hex)
        w.history.with_active_prompt.add(task_id)
    return job_id


def job_history(
    history: History, jobs: int, tasks: int, feedback: int = 5, seed: int = 7
) -> Iterator[list[Envelope]]:
    """``tasks`` tasks with some feedback each, then ``jobs`` jobs spread over them, a chunk at a time."""
    rng = random.Random(seed)
    w = Writer(history, datetime.now(UTC) - timedelta(days=400), rng)
    for n in range(tasks):
        add_feedback(w, add_task(w, n), feedback)
        if len(w.buffer) >= CHUNK:
            yield w.take()
    for n in range(jobs):
        history.jobs.append(add_job(w, history.tasks[n % tasks], n, rng.choice(OUTCOMES)))
        if len(w.buffer) >= CHUNK:
            yield w.take()
    yield w.take()


async def fill_through_the_projector(
    bootstrap: str, topics: Topics, db_url: str, chunks: Iterator[list[Envelope]]
) -> None:
    """Append every event, then let the projector service fold the log; print both rates."""
    log = EventLog(bootstrap, topics, client_id="bench", timeout=60)
    ends: dict[tuple[str, int], int] = {}
    appended, started = 0, time.perf_counter()
    try:
        for chunk in chunks:
            for p in await log.append_all(chunk):
                ends[(p.topic, p.partition)] = max(ends.get((p.topic, p.partition), 0), p.offset + 1)
            appended += len(chunk)
    finally:
        await log.stop()
    elapsed = time.perf_counter() - started
    print(
        f"appended {appended} events (acks=all) in {elapsed:.1f} s: {appended / elapsed:.0f} events/s",
        flush=True,
    )
    stop = asyncio.Event()
    started = time.perf_counter()
    projector = asyncio.create_task(run_projector(bootstrap, topics, db_url, stop))
    engine = make_engine(db_url)
    try:
        while True:
            if projector.done():
                projector.result()
                raise RuntimeError("the projector stopped")
            async with engine.connect() as conn:
                done = {
                    (r.topic, r.partition): r.next_offset
                    for r in (await conn.execute(select(projector_offsets)))
                }
            if all(done.get(tp, 0) >= end for tp, end in ends.items()):
                break
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await projector
        await engine.dispose()
    elapsed = time.perf_counter() - started
    print(
        f"projector: folded {appended} events in {elapsed:.1f} s: {appended / elapsed:.0f} events/s",
        flush=True,
    )


async def fill_through_the_fold(topics: Topics, db_url: str, chunks: Iterator[list[Envelope]]) -> None:
    """``Projection.apply`` on decoded records, placed as Kafka would place them; no broker involved."""
    engine = make_engine(db_url)
    projection = Projection(engine, None, "bench-fill")
    partitioner, partitions = DefaultPartitioner(), list(range(PARTITIONS))
    next_offset = dict.fromkeys(partitions, 0)
    pending: dict[int, list[Delivery]] = {p: [] for p in partitions}
    started, folding = time.perf_counter(), 0.0
    try:
        for chunk in chunks:
            for envelope in chunk:
                p = partitioner(envelope.key, partitions, partitions)
                decoded = codec.decode(codec.encode(envelope))
                pending[p].append(Delivery(topics.tasks, p, next_offset[p], decoded, None))  # type: ignore[arg-type]
                next_offset[p] += 1
                if len(pending[p]) >= BATCH:
                    began = time.perf_counter()
                    await projection.apply(pending[p])
                    folding += time.perf_counter() - began
                    pending[p] = []
        for batch in pending.values():
            began = time.perf_counter()
            await projection.apply(batch)
            folding += time.perf_counter() - began
    finally:
        await engine.dispose()
    n, elapsed = projection.applied, time.perf_counter() - started
    print(
        f"Projection.apply: folded {n} events in {folding:.1f} s: {n / folding:.0f} events/s "
        f"({elapsed:.1f} s with generating, encoding and decoding them)",
        flush=True,
    )


async def measure(client: httpx.AsyncClient, label: str, paths: list[str]) -> None:
    for path in paths[:10]:  # warm up: connections, the pool, the query plans
        (await client.get(path)).raise_for_status()
    latencies = []
    for path in paths:
        started = time.perf_counter()
        response = await client.get(path)
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
    print(f"{label:<30} {summary(latencies)}", flush=True)


async def serve_and_measure(
    bootstrap: str, topics: Topics, db_url: str, history: History, requests: int, home: Path
) -> None:
    """The API under uvicorn beside a projector (the first key is a write), then the timed reads."""
    secret = SecretStr(Fernet.generate_key().decode())
    settings = Settings(
        home=home, secret_key=secret, write_timeout_seconds=60, bootstrap_token=SecretStr(BOOTSTRAP_TOKEN)
    )
    app = create_app(settings, topics=topics, bootstrap=bootstrap, db_url=db_url)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    stop = asyncio.Event()
    projector = asyncio.create_task(run_projector(bootstrap, topics, db_url, stop))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            response = await client.post(
                "/api/v1/keys/bootstrap", json={"name": "bench"}, headers=BOOTSTRAP_HEADER
            )
            response.raise_for_status()
            client.headers["X-API-Key"] = response.json()["key"]
            rng = random.Random(11)
            tasks = [rng.choice(history.tasks) for _ in range(requests)]
            jobs = [rng.choice(history.jobs) for _ in range(requests)]
            prompted = sorted(history.with_active_prompt)
            print(f"API: uvicorn in this process, port {port}; one request at a time, n={requests} each")
            await measure(client, "GET /api/v1/jobs", ["/api/v1/jobs"] * requests)
            await measure(client, "GET /api/v1/jobs?task_id=…", [f"/api/v1/jobs?task_id={t}" for t in tasks])
            await measure(client, "GET /api/v1/jobs?offset=5000", ["/api/v1/jobs?offset=5000"] * requests)
            await measure(client, "GET /api/v1/jobs/{id}", [f"/api/v1/jobs/{j}" for j in jobs])
            paths = [f"/api/v1/prompts/{rng.choice(prompted)}" for _ in range(requests)]
            await measure(client, "GET /api/v1/prompts/{task_id}", paths)
    finally:
        server.should_exit = True
        stop.set()
        await asyncio.gather(serving, projector)


async def run(bootstrap: str, args: argparse.Namespace) -> None:
    home = scratch_dir("kaizen-bench-reads-")
    db_url = args.db_url or f"sqlite+aiosqlite:///{home / 'readmodel.db'}"
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}")
    await ensure_topics(bootstrap, topics, partitions=PARTITIONS)
    engine = make_engine(db_url)
    await create_schema(engine)
    await engine.dispose()
    print(f"{args.jobs} jobs over {args.tasks} tasks; read model: {db_url.split('://', 1)[0]}", flush=True)
    history = History()
    chunks = job_history(history, args.jobs, args.tasks)
    if args.fill == "projector":
        await fill_through_the_projector(bootstrap, topics, db_url, chunks)
    else:
        await fill_through_the_fold(topics, db_url, chunks)
    print(f"read model: {len(history.jobs)} jobs from {history.events} events", flush=True)
    await serve_and_measure(bootstrap, topics, db_url, history, args.requests, home)


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure read latency over a large read model.")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300, help="Requests per endpoint.")
    parser.add_argument("--db-url", help="An empty read model database (default: a fresh SQLite file).")
    parser.add_argument("--fill", choices=["projector", "apply"], default="projector")
    add_keep(parser)
    args = parser.parse_args()
    with cleaned_up(args.keep), broker() as bootstrap:
        asyncio.run(run(bootstrap, args))


if __name__ == "__main__":
    main()
