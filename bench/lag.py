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

    .venv/bin/python -m bench.lag [--rate 1000] [--seconds 20] [--prefill 10000] [--profile FILE]
    .venv/bin/python -m bench.lag --baseline HEAD [--rounds 2]
    .venv/bin/python -m bench.lag --seconds 60 --prefill 10000,1000000 [--rounds 1]

``--profile FILE`` records the projector with ``py-spy`` (not a dependency: ``pip install
py-spy``) during the measured window and writes its raw stacks (all threads) to FILE.

``--baseline REV`` alternates the projector of a Git revision (``git archive REV``, as
``bench.replay --baseline`` does) with the working tree's, ``--rounds`` times each, on
one broker, each run on fresh topics and a fresh read model; the machine is shared, so
only runs this close in time compare. Each run prints the load average beside its figures
and the projector's CPU time during the window; a table of all runs ends the output.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from bench.common import REPO, LoadSampler, broker, percentiles, summary
from bench.replay import PARTITIONS, _projector_at, append, exactly, mixed_history
from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.events.tasks import TaskCreated
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventLog, Position

TASKS = 24
WARM_UP_SECONDS = 2.0


@dataclass
class Sent:
    started: float
    acked: float
    position: Position


@dataclass
class Watermarks:
    """Per partition: when (perf_counter) the stored next offset was first seen at each value."""

    times: dict[int, list[float]] = field(default_factory=dict)
    offsets: dict[int, list[int]] = field(default_factory=dict)

    def see(self, partition: int, next_offset: int, at: float) -> None:
        offsets = self.offsets.setdefault(partition, [])
        if not offsets or next_offset > offsets[-1]:
            offsets.append(next_offset)
            self.times.setdefault(partition, []).append(at)

    def visible_at(self, partition: int, offset: int) -> float | None:
        """The first poll that saw ``offset`` applied (stored next offset > ``offset``)."""
        offsets = self.offsets.get(partition, [])
        i = bisect.bisect_right(offsets, offset)
        return self.times[partition][i] if i < len(offsets) else None


class OffsetWatcher(threading.Thread):
    """Polls the projector's offsets table (read-only; WAL lets it read while the projector writes)."""

    def __init__(self, db: Path, topic: str, poll_seconds: float) -> None:
        super().__init__(daemon=True)
        self.db, self.topic, self.poll = db, topic, poll_seconds
        self.marks = Watermarks()
        self.stopped = threading.Event()

    def run(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self.stopped.is_set():
            try:
                conn = conn or sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
                rows = conn.execute(
                    "SELECT partition, next_offset FROM projector_offsets WHERE topic = ?", (self.topic,)
                ).fetchall()
                at = time.perf_counter()
                for partition, next_offset in rows:
                    self.marks.see(partition, next_offset, at)
            except sqlite3.OperationalError:  # the projector has not made its tables yet
                pass
            time.sleep(self.poll)

    def applied(self, ends: dict[int, int]) -> bool:
        return all(
            (offsets := self.marks.offsets.get(p)) and offsets[-1] >= end for p, end in ends.items() if end
        )


@dataclass
class Run:
    """One measured window: which projector, its lags, the load it ran under."""

    label: str
    from_ack_ms: tuple[float, float]  # p50, p99
    from_start_ms: tuple[float, float]
    cpu_seconds: float
    seconds: float
    load: str
    loadavg: tuple[float, float]  # 1-minute load average before and after


@contextlib.contextmanager
def projector(
    bootstrap: str, prefix: str, home: Path, db: Path, code: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m services.projector``: the working tree's, or the ``services`` package in ``code``.

    With ``code``, the child starts in that directory, so its ``services`` comes first on
    ``sys.path`` (before an installed one); ``shared`` still comes from the working tree.
    """
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")},
        "KAIZEN_KAFKA_BOOTSTRAP": bootstrap,
        "KAIZEN_TOPIC_PREFIX": prefix,
        "KAIZEN_HOME": str(home),
        "KAIZEN_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "KAIZEN_PARTITIONS": str(PARTITIONS),
        "KAIZEN_SECRET_KEY": Fernet.generate_key().decode(),
        "KAIZEN_LOG_LEVEL": "WARNING",
    }
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with (home / "projector.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.projector"],
            env=env,
            cwd=code or REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


async def wait_applied(watcher: OffsetWatcher, ends: dict[int, int], within: float) -> None:
    deadline = time.monotonic() + within
    while not watcher.applied(ends):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the projector did not reach {ends} in {within:.0f} s; see its log")
        await asyncio.sleep(0.05)


def feedback(task_id: uuid.UUID, i: int) -> Envelope:
    item = FeedbackRecorded(
        feedback_id=uuid.uuid4(),
        task_id=task_id,
        inputs={"text": f"Ticket {i}: the invoice shows the wrong amount."},
        output="The customer reports a wrong invoice amount.",
        score=0.5,
    )
    return Envelope.wrap(item, source="api", correlation_id=uuid.uuid4().hex)


async def sustained(log: EventLog, tasks: list[uuid.UUID], rate: int, seconds: float) -> list[Sent]:
    """Send ``rate`` events a second for ``seconds`` (open loop); every acknowledged send."""
    sent: list[Sent] = []

    async def one(envelope: Envelope) -> None:
        started = time.perf_counter()
        position = await log.append(envelope)
        sent.append(Sent(started, time.perf_counter(), position))

    pending: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(feedback(tasks[i % len(tasks)], i)))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    elapsed = time.perf_counter() - start
    print(f"sent {len(sent)} events in {elapsed:.1f} s: {len(sent) / elapsed:.0f} events/s (target {rate})")
    return sorted(sent, key=lambda s: s.started)


PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


@contextlib.contextmanager
def sampled(pid: int, out: str | None) -> Iterator[None]:
    """``py-spy record`` of ``pid`` while the block runs (nothing when ``out`` is None)."""
    if out is None:
        yield
        return
    spy = subprocess.Popen(
        [PY_SPY, "record", "--pid", str(pid), "--threads", "--format", "raw", "--rate", "200", "-o", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
        spy.wait(30)
        print(f"projector stacks: {out}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def code_of(code: Path | None) -> str:
    """Where the projector started with ``code`` imports ``services.projector`` from."""
    env = {**os.environ, "PYTHONPATH": str(REPO)} if code is not None else None
    found = subprocess.run(
        [sys.executable, "-c", "import services.projector as p; print(p.__file__)"],
        cwd=code or REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(Path(found.stdout.strip()).parent)


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
    home = Path(tempfile.mkdtemp(prefix="kaizen-lag-"))
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


def report(
    sent: list[Sent],
    marks: Watermarks,
    load: LoadSampler,
    rate: int,
    seconds: float,
    prefill: int,
    poll_ms: float,
    label: str = "working tree",
    cpu: float = 0.0,
    loadavg: tuple[float, float] = (0.0, 0.0),
) -> Run:
    window = [s for s in sent if s.started - sent[0].started >= WARM_UP_SECONDS]
    from_start, from_ack, acks = [], [], []
    for s in window:
        visible = marks.visible_at(s.position.partition, s.position.offset)
        assert visible is not None, "every event was seen applied before the report"
        from_start.append(visible - s.started)
        from_ack.append(max(0.0, visible - s.acked))
        acks.append(s.acked - s.started)
    print(
        f"\n{label}: {rate} events/s for {seconds:.0f} s after a log of {prefill} events "
        f"(first {WARM_UP_SECONDS:.0f} s not counted; offsets polled every {poll_ms:g} ms):"
    )
    print(f"  append → visible   {summary(from_start)}")
    print(f"  ack → visible      {summary(from_ack)}")
    print(f"  append → ack       {summary(acks)}")
    print(f"  projector CPU from the window's start until all was visible: {cpu:.1f} s")
    print(f"  {load.summary()}; 1-minute load {loadavg[0]:.1f} before, {loadavg[1]:.1f} after", flush=True)
    return Run(label, percentiles(from_ack), percentiles(from_start), cpu, seconds, load.summary(), loadavg)


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


def growth_table(runs: list[Run], prefills: list[int]) -> list[str]:
    """Markdown: every run, then the largest log's mean p50 and p99 over the smallest's."""
    lines = ["| run | log before | ack → visible p50 / p99 | append → visible p50 / p99 | CPU s | load |"]
    lines.append("|---|---|---|---|---|---|")
    for n, r in enumerate(runs, 1):
        lines.append(
            f"| {n} | {r.label} | {r.from_ack_ms[0]:.1f} / {r.from_ack_ms[1]:.1f} ms "
            f"| {r.from_start_ms[0]:.1f} / {r.from_start_ms[1]:.1f} ms | {r.cpu_seconds:.1f} "
            f"| {r.loadavg[0]:.1f} → {r.loadavg[1]:.1f} |"
        )
    small, large = (f"{min(prefills):,} events", f"{max(prefills):,} events")

    def mean(label: str, pick: Callable[[Run], float]) -> float:
        return statistics.mean(pick(r) for r in runs if r.label == label)

    lines.append("")
    lines.append(f"{large} over {small} (above 1: slower on the large log):")
    for name, pick in [
        ("ack → visible p50", lambda r: r.from_ack_ms[0]),
        ("ack → visible p99", lambda r: r.from_ack_ms[1]),
        ("append → visible p50", lambda r: r.from_start_ms[0]),
        ("append → visible p99", lambda r: r.from_start_ms[1]),
        ("projector CPU s", lambda r: r.cpu_seconds),
    ]:
        lines.append(f"  {name:22} {mean(large, pick) / mean(small, pick):.3f}")
    return lines


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
    args = parser.parse_args()
    prefills = [int(n) for n in args.prefill.split(",")]
    with broker() as bootstrap:
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
