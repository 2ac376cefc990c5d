"""A task's feedback counters equal counting its feedback rows, through the real projector, on both databases.

Histories go through ``Projection.apply`` in batches, as the consumer hands them over:
feedback before and after its task exists, ids re-sent and records redelivered, seeds,
deletions, jobs that move the cut-off, and poison that makes a batch bisect. Afterwards
``tasks.live_feedback`` and ``tasks.live_since_cutoff`` must equal what the API counted
from the rows before the counters existed (``REFERENCE``, that query as it was).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import case, func, select

from services.projector.projection import Projection
from shared.events import codec
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events import tasks as tk
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.kafka.consumer import Delivery
from shared.readmodel import tables as t
from shared.readmodel.db import create_schema, make_engine

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TOPIC = "tasks"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: Beyond every integer column of both databases: a job request carrying it is refused (poison).
HUGE = 2**70

#: The API's count before the counters: live feedback per task, and of it what lies after the cut-off.
REFERENCE = (
    select(
        t.feedback.c.task_id,
        func.count(),
        func.sum(case((t.feedback.c.log_offset > t.tasks.c.last_job_cutoff, 1), else_=0)),
    )
    .join(t.tasks, t.tasks.c.id == t.feedback.c.task_id)
    .where(t.feedback.c.source != "seed")
    .group_by(t.feedback.c.task_id)
)


def _delivery(envelope: Envelope, offset: int) -> Delivery:
    value = codec.encode(envelope)
    record = ConsumerRecord(TOPIC, 0, offset, 0, 0, envelope.key, value, None, 0, len(value), [])
    return Delivery(TOPIC, 0, offset, codec.decode(value), record)


async def _project(db_url: str, batches: Sequence[Sequence[Delivery]]) -> dict[str, tuple[int, int]]:
    """Apply ``batches`` in turn; each task's counters, and each task's figures counted from its rows."""
    engine = make_engine(db_url)
    projection = Projection(engine, None, "counters-test")
    try:
        await create_schema(engine)
        for batch in batches:
            await projection.apply(list(batch))
        async with engine.connect() as conn:
            counted = {task: (int(n), int(s or 0)) for task, n, s in (await conn.execute(REFERENCE)).all()}
            query = select(t.tasks.c.id, t.tasks.c.live_feedback, t.tasks.c.live_since_cutoff)
            kept = {task: (n, s) for task, n, s in (await conn.execute(query)).all()}
    finally:
        await projection.close()
        await engine.dispose()
    return {task: (kept[task], counted.get(task, (0, 0))) for task in kept}  # type: ignore[misc]


# --- a randomised history over a small world, so events meet the same tasks and ids ---------------

N_TASKS, N_IDS = 2, 6
SOURCES = st.sampled_from(["sdk", "user_rating", "auto_eval", "seed"])
OPS = st.one_of(
    st.tuples(st.just("create"), st.integers(0, N_TASKS - 1)),
    st.tuples(st.just("delete"), st.integers(0, N_TASKS - 1)),
    st.tuples(st.just("feedback"), st.integers(0, N_TASKS - 1), st.integers(0, N_IDS - 1), SOURCES),
    st.tuples(st.just("feedback"), st.integers(0, N_TASKS - 1), st.integers(0, N_IDS - 1), SOURCES),
    st.tuples(st.just("seeds"), st.integers(0, N_TASKS - 1), st.lists(st.integers(0, N_IDS - 1), max_size=3)),
    st.tuples(st.just("job"), st.integers(0, N_TASKS - 1), st.integers(0, 60)),
    st.tuples(st.just("redeliver"), st.integers(0, 1000)),
    st.tuples(st.just("poison"), st.integers(0, N_TASKS - 1)),
)


def _history(ops: list[tuple[Any, ...]]) -> list[Delivery]:
    """The log the operations make; ids are fresh, so examples sharing a database never meet."""
    tasks = [uuid.uuid4() for _ in range(N_TASKS)]
    ids = [uuid.uuid4() for _ in range(N_IDS)]
    log: list[Delivery] = []
    for op in ops:
        kind, offset = op[0], len(log)
        if kind == "redeliver":
            if log:
                earlier = log[op[1] % len(log)]
                log.append(_delivery(earlier.envelope, earlier.offset))  # type: ignore[arg-type]
            continue
        event = _event(op, tasks, ids, offset)
        log.append(
            _delivery(Envelope.wrap(event, source="test", time=T0 + timedelta(seconds=offset)), offset)
        )
    return log


def _event(op: tuple[Any, ...], tasks: list[uuid.UUID], ids: list[uuid.UUID], offset: int) -> Event:
    kind, task = op[0], tasks[op[1]]
    if kind == "create":
        return tk.TaskCreated(task_id=task, name=f"t{op[1]}", request_id=uuid.uuid4().hex)
    if kind == "delete":
        return tk.TaskDeleted(task_id=task)
    if kind == "feedback":
        return fb.FeedbackRecorded(
            feedback_id=ids[op[2]], task_id=task, inputs={"x": 1}, output="o", score=0.5, source=op[3]
        )
    if kind == "seeds":
        seeds = [fb.Seed(feedback_id=ids[i], inputs={"x": 1}, output="s") for i in op[2]]
        return fb.SeedsUploaded(task_id=task, upload_id=uuid.uuid4(), seeds=seeds)
    count, cutoff = (HUGE, 0) if kind == "poison" else (1, min(op[2], offset))
    return jb.JobRequested(
        job_id=uuid.uuid4(),
        task_id=task,
        triggered_by="auto_threshold",
        feedback_count=count,
        log_offset=cutoff,
    )


def _batches(log: list[Delivery], sizes: list[int]) -> list[list[Delivery]]:
    found, start, i = [], 0, 0
    while start < len(log):
        size = sizes[i % len(sizes)]
        found.append(log[start : start + size])
        start, i = start + size, i + 1
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(OPS, min_size=1, max_size=40),
    st.lists(st.integers(1, 12), min_size=1, max_size=6),
)
def test_the_counters_equal_counting_the_rows_after_any_history_in_any_batches(
    db_url: str, ops: list[tuple[Any, ...]], sizes: list[int]
) -> None:
    figures = asyncio.run(_project(db_url, _batches(_history(ops), sizes)))
    assert {task: kept for task, (kept, _) in figures.items()} == {
        task: counted for task, (_, counted) in figures.items()
    }


# --- one history spelled out -------------------------------------------------------------------


def _wrap(events: list[Event]) -> list[Delivery]:
    return [
        _delivery(Envelope.wrap(e, source="test", time=T0 + timedelta(seconds=i)), i)
        for i, e in enumerate(events)
    ]


async def test_a_task_shows_its_feedback_counted_once_whatever_came_before_or_twice(db_url: str) -> None:
    task = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(5)]

    def feedback(i: int, source: Any = "sdk") -> fb.FeedbackRecorded:
        return fb.FeedbackRecorded(
            feedback_id=ids[i], task_id=task, inputs={}, output="o", score=0.5, source=source
        )

    seed = fb.Seed(feedback_id=ids[4], inputs={}, output="s")
    log = _wrap(
        [
            feedback(0),  # 0: before the task exists
            tk.TaskCreated(task_id=task, name="t", request_id="r"),  # 1
            feedback(1),  # 2
            fb.SeedsUploaded(task_id=task, upload_id=uuid.uuid4(), seeds=[seed]),  # 3
            feedback(4),  # 4: the seed's id: the seed row stays, nothing counts
            jb.JobRequested(
                job_id=uuid.uuid4(),
                task_id=task,
                triggered_by="auto_threshold",
                feedback_count=2,
                log_offset=2,
            ),  # 5: the cut-off moves past feedback 0 and 1
            feedback(2, source="user_rating"),  # 6
            feedback(1),  # 7: re-sent
            jb.JobRequested(
                job_id=uuid.uuid4(),
                task_id=task,
                triggered_by="auto_threshold",
                feedback_count=HUGE,
                log_offset=9,
            ),  # 8: poison, refused: the cut-off stays at 2
            feedback(3),  # 9
        ]
    )
    # The first batch ends inside the history; the second holds the poison and a redelivery.
    figures = await _project(db_url, [log[:3], [*log[3:], log[6], log[2]]])
    assert figures == {str(task): ((4, 2), (4, 2))}
