"""Event → visible lag at a sustained rate: how soon the read model shows what the log got.

Appends ``FeedbackRecorded`` events at a fixed rate through the producer the API uses
(idempotent, ``acks=all``). The schedule is an open loop: event *i* is sent at
``start + i / rate`` whether or not earlier ones were acknowledged, so a slow fold shows as
lag and is not hidden by a slower sender. A real projector process (``python -m
services.projector``, SQLite read model) folds them. A thread polls the projector's stored
offsets (``projector_offsets``, written in the same transaction as the rows, which is what
the API's read-your-writes waits on) every ``--poll-ms``. An event is visible once its
partition's stored next offset has passed it; its lag is that moment minus the moment its
append began (and, second figure, minus its acknowledgement).

With ``--prefill N`` the log first holds N mixed events (``bench.replay``'s history) and
the projector has folded them before the measured window, so runs at 10,000 and 1,000,000
say whether the lag grows with the log. ``--prefill 10000,1000000`` measures each in turn
(``--rounds`` times, alternating, each on its own topics and read model) and prints the
largest log's figures over the smallest's (issue 10: no figure may degrade by more than 10 %).

    .venv/bin/python -m bench.lag [--rate 1000] [--seconds 20] [--prefill 10000] [--profile FILE] [--keep]
    .venv/bin/python -m bench.lag --baseline HEAD [--rounds 2]
    .venv/bin/python -m bench.lag --seconds 60 --prefill 10000,1000000 [--rounds 1]

``--profile FILE`` records the projector with ``py-spy`` (not a dependency: ``pip install
py-spy``) during the measured window and writes its raw stacks (all threads) to FILE.

``--baseline REV`` alternates the projector of a Git revision (``git archive REV``, as
``bench.replay --baseline`` does) with the working tree's, ``--rounds`` times each, on
one broker, each run on fresh topics and a fresh read model; the machine is shared, so
only runs this close in time compare. Each run prints the load average beside its figures
and the projector's CPU time during the window; a table of all runs ends the output.

Each run's read model and the projector's log live in ``/tmp/kaizen-lag-*`` (the broker's
in ``/tmp/kaizen-bench-*``), removed when the script ends unless ``--keep``.

Modules: ``bench.lag_timing`` (the sender and the offsets watcher), ``bench.lag_report``
(the figures and tables), ``bench.projector_process`` (the projector),
``bench.profiling`` (py-spy, CPU time); here, the runs and the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path

from bench.common import LoadSampler, broker
from bench.lag_report import Run, growth_table, report
from bench.lag_timing import OffsetWatcher, sustained, wait_applied
from bench.profiling import cpu_seconds, sampled
from bench.projector_process import code_of, projector
from bench.replay import PARTITIONS, _projector_at, append, exactly, mixed_history
from bench.scratch import add_keep, cleaned_up, scratch_dir
from shared.events.envelope import Envelope
from shared.events.tasks import TaskCreated
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventLog

TASKS = 24


async def measure(
    bootstrap: str,
    rate: int,
    seconds: float,
    prefill: int,
    poll_ms: float,
    profile: str | None = None,
    code: Path | None = None,
    label: str = "working tree",
) -> Run:
    topics = Topics(f"bench-lag-{uuid.uuid4().hex[:8]}")
    await ensure_topics(bootstrap, topics, partitions=PARTITIONS)
    home = scratch_dir("kaizen-lag-")
    db = home / "readmodel.db"
    if prefill:
        await append(bootstrap, topics, exactly(prefill, mixed_history(prefill, 200)))
    log = EventLog(bootstrap, topics, client_id="bench-lag", timeout=30)
    task_events = [
        Envelope.wrap(
            TaskCreated(
                task_id=uuid.uuid4(),
                name=f"lag-{n:03d}",
                description="Summarize a support ticket in one sentence.",
                input_schema=["text"],
                feedback_threshold=10**9,  # no job is triggered: this measures the fold alone
                request_id=uuid.uuid4().hex,
            ),
            source="api",
        )
        for n in range(TASKS)
    ]
    positions = await log.append_all(task_events)
    tasks = [e.data.task_id for e in task_events]  # type: ignore[attr-defined]
    ends: dict[int, int] = {}
    for p in positions:
        ends[p.partition] = max(ends.get(p.partition, 0), p.offset + 1)
    watcher = OffsetWatcher(db, topics.tasks, poll_ms / 1000)
    watcher.start()
    try:
        with projector(bootstrap, topics.prefix, home, db, code) as folding, LoadSampler() as load:
            folded = time.perf_counter()
            # A large prefill folds at a few thousand records a second on a busy machine.
            await wait_applied(watcher, ends, within=max(600, prefill / 500))
            print(
                f"the projector applied the prefilled log ({prefill} events + {TASKS} tasks) "
                f"{time.perf_counter() - folded:.1f} s after its start"
            )
            before = (os.getloadavg()[0], cpu_seconds(folding.pid))
            with sampled(folding.pid, profile):
                sent = await sustained(log, tasks, rate, seconds)
            last: dict[int, int] = {}
            for s in sent:
                last[s.position.partition] = max(last.get(s.position.partition, 0), s.position.offset + 1)
            await wait_applied(watcher, last, within=120)
            cpu = cpu_seconds(folding.pid) - before[1]
            loadavg = (before[0], os.getloadavg()[0])
        return report(sent, watcher.marks, load, rate, seconds, prefill, poll_ms, label, cpu, loadavg)
    finally:
        watcher.stopped.set()
        await log.stop()


async def alternate(
    bootstrap: str, rate: int, seconds: float, prefill: int, poll_ms: float, baseline: str, rounds: int
) -> list[Run]:
    """Baseline, working tree, baseline, …: ``rounds`` runs of each, one after the other."""
    variants = [(f"baseline {baseline}", _projector_at(baseline)), ("working tree", None)]
    for label, code in variants:
        print(f"{label}: services.projector from {code_of(code)}")
    runs = []
    for label, code in variants * rounds:
        runs.append(await measure(bootstrap, rate, seconds, prefill, poll_ms, code=code, label=label))
    print("\n| run | projector | ack → visible p50 / p99 | append → visible p50 / p99 | CPU s | load |")
    print("|---|---|---|---|---|---|")
    for n, r in enumerate(runs, 1):
        print(
            f"| {n} | {r.label} | {r.from_ack_ms[0]:.1f} / {r.from_ack_ms[1]:.1f} ms "
            f"| {r.from_start_ms[0]:.1f} / {r.from_start_ms[1]:.1f} ms | {r.cpu_seconds:.1f} "
            f"| {r.loadavg[0]:.1f} → {r.loadavg[1]:.1f} |"
        )
    return runs


async def grow(
    bootstrap: str, rate: int, seconds: float, prefills: list[int], poll_ms: float, rounds: int
) -> list[Run]:
    """Each prefill in turn, ``rounds`` times: small, large, small, large, …"""
    runs = []
    for _ in range(rounds):
        for prefill in prefills:
            label = f"{prefill:,} events"
            runs.append(await measure(bootstrap, rate, seconds, prefill, poll_ms, label=label))
    print("\n" + "\n".join(growth_table(runs, prefills)), flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure event → visible lag at a sustained rate.")
    parser.add_argument("--rate", type=int, default=1000, help="Events per second.")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--prefill", default="10000", help="Mixed events in the log before; several (10000,1000000): growth."
    )
    parser.add_argument("--poll-ms", type=float, default=1.0, help="How often the offsets are read.")
    parser.add_argument("--profile", metavar="FILE", help="py-spy raw stacks of the projector, to FILE.")
    parser.add_argument("--baseline", metavar="REV", help="Alternate REV's projector and ours.")
    parser.add_argument(
        "--rounds", type=int, help="With --baseline: runs of each projector (2); with prefills: of each (1)."
    )
    add_keep(parser)
    args = parser.parse_args()
    prefills = [int(n) for n in args.prefill.split(",")]
    with cleaned_up(args.keep), broker() as bootstrap:
        if len(prefills) > 1:
            asyncio.run(grow(bootstrap, args.rate, args.seconds, prefills, args.poll_ms, args.rounds or 1))
        elif args.baseline:
            asyncio.run(
                alternate(
                    bootstrap,
                    args.rate,
                    args.seconds,
                    prefills[0],
                    args.poll_ms,
                    args.baseline,
                    args.rounds or 2,
                )
            )
        else:
            asyncio.run(measure(bootstrap, args.rate, args.seconds, prefills[0], args.poll_ms, args.profile))


if __name__ == "__main__":
    main()
