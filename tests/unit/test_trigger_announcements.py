"""A job the trigger requested is announced (logged, its trace remembered) once, and only if kept.

The trigger folds a batch in one transaction; when the store refuses a record, the loop
rolls the batch back and folds its parts again (bisection). A decision taken in a part
that was rolled back never happened, so it must leave no log line and no remembered trace.
The store is the real SQLite state; the poison is a text with a lone surrogate, which
sqlite3 cannot store.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import ConsumerRecord

from services.optimizer.adapters import StateStore
from services.optimizer.fold import Trigger
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.events.tasks import TaskCreated
from shared.events.topics import Topics
from shared.kafka.consumer import Delivery
from shared.kafka.offsets import local_state_engine
from shared.kafka.producer import EventLog

TASK = uuid.uuid4()


class Log:
    """Stands in for the event log: keeps what the trigger appends and dead-letters."""

    def __init__(self) -> None:
        self.topics = Topics("t")
        self.appended: list[Envelope] = []
        self.dead: list[bytes | None] = []

    async def append_all(self, envelopes: list[Envelope]) -> None:
        self.appended += envelopes

    async def send_raw(self, topic: str, value: bytes | None, key: bytes | None, headers: Any) -> None:
        self.dead.append(value)


def delivery(event: Event, offset: int) -> Delivery:
    envelope = Envelope.wrap(event, source="api")
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "tasks", 0, offset, 0, 0, envelope.key, b"{}", None, 0, 0, []
    )
    return Delivery("tasks", 0, offset, envelope, record)


def feedback(output: str = "o") -> fb.FeedbackRecorded:
    return fb.FeedbackRecorded(
        feedback_id=uuid.uuid4(), task_id=TASK, inputs={"t": "x"}, output=output, score=1, source="sdk"
    )


async def test_a_job_requested_in_a_part_rolled_back_is_announced_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history: list[Event] = [
        TaskCreated(task_id=TASK, name="t", request_id="r", feedback_threshold=2),
        feedback(),
        feedback(),  # crosses the threshold: a job is requested
        feedback("a\ud800b"),  # refused by the store: the batch is bisected
    ]
    engine = local_state_engine(tmp_path / "o.db")
    log = Log()
    try:
        store = StateStore(engine)
        await store.create()
        trigger = Trigger(store, cast(EventLog, log), "tests")
        with caplog.at_level(logging.INFO, logger="services.optimizer.fold"):
            await trigger.apply([delivery(e, offset) for offset, e in enumerate(history)])
    finally:
        await engine.dispose()
    [job] = [e.data for e in log.appended if isinstance(e.data, jb.JobRequested)]
    announced = [r for r in caplog.records if r.getMessage().startswith("job ")]
    assert [r.getMessage() for r in announced] == [f"job {job.job_id} requested (auto_threshold)"]
    assert len(log.dead) == 1
