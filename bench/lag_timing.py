"""``bench.lag``'s timing: an open-loop sender, and a watcher of the projector's stored offsets.

The sender appends event *i* at ``start + i / rate`` whether or not earlier ones were
acknowledged, so a slow fold shows as lag and is not hidden by a slower sender. The watcher
polls ``projector_offsets`` (written in the same transaction as the rows, which is what the
API's read-your-writes waits on): an event is visible once its partition's stored next
offset has passed it.
"""

from __future__ import annotations

import asyncio
import bisect
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.kafka.producer import EventLog, Position


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
