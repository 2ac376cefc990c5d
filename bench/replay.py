"""Replay throughput: ``rebuild()`` (what ``kaizen replay`` runs) over a log of N events.

The log is a fresh topic prefix holding a mixed, realistic history: API keys issued and
revoked, tasks, bursts of feedback, and jobs (success, failure, PR opened or failed,
prompt activations) as the API, the optimizer and the PR publisher emit them; the same
builders as ``bench.api_reads``. ``rebuild()`` then folds the whole log into an empty
read model: SQLite by default, PostgreSQL with ``--db-url``.

    .venv/bin/python -m bench.replay [--events 100000] [--db-url postgresql+asyncpg://…/an_empty_database]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.api_reads import OUTCOMES, History, Writer, add_feedback, add_job, add_task
from bench.common import broker
from services.projector.bootstrap import rebuild
from shared.events.envelope import Envelope
from shared.events.keys import ApiKeyCreated, ApiKeyRevoked
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventLog

PARTITIONS = 6
CHUNK = 5000


def add_keys(w: Writer, n: int) -> None:
    for i in range(n):
        key_id = uuid.uuid4()
        digest = hashlib.sha256(key_id.bytes).hexdigest()
        created = ApiKeyCreated(
            key_id=key_id, name=f"key {i}", key_hash=digest, prefix=f"kaizen_{digest[:8]}"
        )
        w.emit(created, "api", rid=uuid.uuid4().hex)
        if i % 3 == 2:
            w.emit(ApiKeyRevoked(key_id=key_id), "api", rid=uuid.uuid4().hex)


def mixed_history(events: int, tasks: int, seed: int = 5) -> Iterator[list[Envelope]]:
    """Keys and tasks first, then feedback bursts and jobs until ``events``, a chunk at a time."""
    rng = random.Random(seed)
    history = History()
    w = Writer(history, datetime.now(UTC) - timedelta(days=400), rng)
    add_keys(w, 12)
    for n in range(tasks):
        add_task(w, n)
    offset = 0
    while history.events < events:
        task = rng.choice(history.tasks)
        add_feedback(w, task, rng.randint(10, 40))
        add_job(w, task, offset, rng.choice(OUTCOMES))
        offset += 1
        if len(w.buffer) >= CHUNK:
            yield w.take()
    yield w.take()


def exactly(n: int, chunks: Iterator[list[Envelope]]) -> Iterator[list[Envelope]]:
    """The first ``n`` events (the log may end in the middle of a job, as a live log does)."""
    for chunk in chunks:
        if n <= 0:
            return
        yield chunk[:n]
        n -= len(chunk)


async def append(
    bootstrap: str, topics: Topics, chunks: Iterator[list[Envelope]]
) -> collections.Counter[str]:
    log = EventLog(bootstrap, topics, client_id="bench", timeout=60)
    kinds: collections.Counter[str] = collections.Counter()
    started = time.perf_counter()
    try:
        for chunk in chunks:
            await log.append_all(chunk)
            kinds.update(e.type.split(".")[1] for e in chunk)
    finally:
        await log.stop()
    n, elapsed = sum(kinds.values()), time.perf_counter() - started
    print(f"appended {n} events (acks=all) in {elapsed:.1f} s: {n / elapsed:.0f} events/s", flush=True)
    return kinds


async def run(bootstrap: str, events: int, tasks: int, db_url: str | None) -> None:
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}")
    await ensure_topics(bootstrap, topics, partitions=PARTITIONS)
    kinds = await append(bootstrap, topics, exactly(events, mixed_history(events, tasks)))
    print("log: " + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()))
    url = (
        db_url
        or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='kaizen-bench-replay-')) / 'rebuilt.db'}"
    )
    started = time.perf_counter()
    applied = await rebuild(bootstrap, topics, url)
    elapsed = time.perf_counter() - started
    backend = url.split("://", 1)[0]
    print(
        f"rebuild() into {backend}: {applied} records in {elapsed:.1f} s: {applied / elapsed:.0f} records/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure replay (rebuild) throughput.")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--db-url", help="An empty read model database (default: a fresh SQLite file).")
    args = parser.parse_args()
    with broker() as bootstrap:
        asyncio.run(run(bootstrap, args.events, args.tasks, args.db_url))


if __name__ == "__main__":
    main()
