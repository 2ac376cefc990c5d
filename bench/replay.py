"""Replay throughput: ``rebuild()`` (what ``kaizen replay`` runs) over a log of N events.

The log is a fresh topic prefix holding a mixed, realistic history: API keys issued and
revoked, tasks, bursts of feedback, and jobs (success, failure, PR opened or failed,
prompt activations) as the API, the optimizer and the PR publisher emit them; the same
builders as ``bench.api_reads``. ``rebuild()`` then folds the whole log into an empty
read model: SQLite by default, PostgreSQL with ``--db-url``, or both with ``--postgres``.

Each rebuild runs in a child process of its own, which reports its peak RSS. With
``--baseline REF`` the projector of a Git revision (``git archive REF``, read only) folds
the same log first, in the same conditions, so the two figures compare.

    .venv/bin/python -m bench.replay [--events 100000] [--db-url postgresql+asyncpg://…/an_empty_database]
    .venv/bin/python -m bench.replay --events 100000 --baseline HEAD --postgres postgresql+asyncpg://…/postgres

``--profile PREFIX`` records each rebuild child with ``py-spy`` (not a dependency: ``pip
install py-spy``; non-blocking, so it does not stretch the rebuild) and writes its raw
stacks, all threads, to ``PREFIX.<n>.<variant>.raw``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.scratch import add_keep, cleaned_up, scratch_dir
from shared.events.envelope import Envelope
from shared.events.keys import ApiKeyCreated, ApiKeyRevoked
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventLog

if TYPE_CHECKING:
    from bench.api_reads import Writer

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
    from bench.api_reads import OUTCOMES, History, Writer, add_feedback, add_job, add_task

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


async def run(
    bootstrap: str,
    events: int,
    tasks: int,
    db_url: str | None,
    baseline: str | None,
    postgres: str | None,
    rounds: int = 1,
    profile: str | None = None,
) -> None:
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}")
    await ensure_topics(bootstrap, topics, partitions=PARTITIONS)
    kinds = await append(bootstrap, topics, exactly(events, mixed_history(events, tasks)))
    print("log: " + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()), flush=True)
    variants: list[tuple[str, str | None]] = [("working tree", None)]
    if baseline is not None:
        variants.insert(0, (f"baseline {baseline}", baseline))
    backends = [db_url] if db_url else ["sqlite"] + ([postgres] if postgres else [])
    for backend in backends:
        for n, (label, ref) in enumerate(variants * rounds):  # alternating: baseline, working tree, …
            url = await _empty_database(backend)
            load = os.getloadavg()[0]
            stacks = None if profile is None else f"{profile}.{n}.{'baseline' if ref else 'tree'}.raw"
            result = _rebuild_in_child(bootstrap, topics, url, ref, stacks)
            applied, seconds, cpu = result["applied"], result["seconds"], result["cpu_seconds"]
            own = result.get("rebuild_cpu_seconds", cpu)  # a baseline's bench may predate the field
            print(
                f"{label:<16} rebuild() into {url.split('://', 1)[0]}: {applied} records in {seconds:.1f} s: "
                f"{applied / seconds:.0f} records/s; {cpu:.1f} CPU s in the process, "
                f"{own:.1f} in the rebuild ({applied / own:.0f} records per rebuild CPU second); "
                f"peak RSS {result['peak_rss_mb']:.0f} MB; "
                f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; code in {result['code']}"
                + (f"; stacks in {stacks}" if stacks else ""),
                flush=True,
            )


async def _empty_database(backend: str) -> str:
    """A fresh SQLite file, or a new database on the PostgreSQL server of ``backend``."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{scratch_dir('kaizen-bench-replay-') / 'rebuilt.db'}"
    if not backend.startswith("postgresql") or backend.rsplit("/", 1)[-1] != "postgres":
        return backend  # --db-url: the caller's empty database
    from bench.common import new_database

    return await new_database(backend, f"bench_replay_{uuid.uuid4().hex[:8]}")


def _rebuild_in_child(
    bootstrap: str, topics: Topics, url: str, ref: str | None, stacks: str | None = None
) -> dict[str, Any]:
    """Run ``rebuild()`` in a child process (``ref``'s projector, or the working tree's).

    ``stacks``: record the child with py-spy into this file.
    """
    child = [sys.executable, "-m", "bench.replay", "--rebuild-only", topics.prefix, "--db-url", url]
    child += ["--bootstrap", bootstrap]
    if ref is not None:
        child += ["--code", str(_projector_at(ref))]
    if stacks is not None:
        from bench.profiling import PY_SPY

        spy = [PY_SPY, "record", "--nonblocking", "--threads", "--format", "raw", "--rate", "200"]
        child = [*spy, "-o", stacks, "--", *child]
    done = subprocess.run(child, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the rebuild failed:\n{done.stderr[-3000:]}")
    # The child's answer is its last JSON line (py-spy may print after it).
    answer = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    result: dict[str, Any] = json.loads(answer)
    return result


def _projector_at(ref: str) -> Path:
    """``services/__init__.py``, ``services/projector`` and ``shared`` as of ``ref``, in a new directory.

    ``shared`` too: the codec, the batch-fold loop and the read model's engine are part of
    what a rebuild costs, so a baseline with today's ``shared`` would not be ``ref``'s.
    """
    if Path(ref).is_dir():  # a directory holding them already (e.g. the working tree with a change undone)
        return Path(ref)
    root = scratch_dir("kaizen-bench-baseline-")
    archive = subprocess.run(
        ["git", "archive", ref, "services/__init__.py", "services/projector", "shared"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


async def rebuild_only(kafka: str, prefix: str, url: str, code: str | None) -> dict[str, Any]:
    """Time ``rebuild()``; with ``code``, the ``services`` and ``shared`` found there (a revision's)."""
    if code is not None:
        sys.path.insert(0, code)
        for name in [m for m in sys.modules if m.split(".", 1)[0] in ("services", "shared")]:
            del sys.modules[name]
    from services.projector import bootstrap
    from shared.events.topics import Topics

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    applied = await bootstrap.rebuild(kafka, Topics(prefix), url)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime  # every thread of the process, SQLite's included
    return {
        "applied": applied,
        "seconds": seconds,
        "cpu_seconds": cpu,
        # Without the imports and start-up before it: the rebuild's own cost per record.
        "rebuild_cpu_seconds": cpu - before.ru_utime - before.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "code": str(Path(bootstrap.__file__).parent),  # which projector ran
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure replay (rebuild) throughput.")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--db-url", help="An empty read model database (default: a fresh SQLite file).")
    parser.add_argument(
        "--postgres", help="A PostgreSQL server URL (…/postgres): also measure a fresh database on it."
    )
    parser.add_argument(
        "--baseline",
        help="A Git revision whose projector folds the same log first (e.g. HEAD), or a directory "
        "holding the ``services`` and ``shared`` packages to run instead.",
    )
    parser.add_argument("--rounds", type=int, default=1, help="Rebuilds per variant, alternating.")
    parser.add_argument("--profile", metavar="PREFIX", help="py-spy raw stacks of each rebuild, to PREFIX.*.")
    parser.add_argument("--rebuild-only", metavar="PREFIX", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    add_keep(parser)
    args = parser.parse_args()
    if args.rebuild_only:
        print(
            json.dumps(asyncio.run(rebuild_only(args.bootstrap, args.rebuild_only, args.db_url, args.code)))
        )
        return
    from bench.common import broker

    with cleaned_up(args.keep), broker() as bootstrap:
        asyncio.run(
            run(
                bootstrap,
                args.events,
                args.tasks,
                args.db_url,
                args.baseline,
                args.postgres,
                args.rounds,
                args.profile,
            )
        )


if __name__ == "__main__":
    main()
