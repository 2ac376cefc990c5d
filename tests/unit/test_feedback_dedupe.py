"""Each feedback id counts once toward the trigger, however often the log holds its event.

An API retry after a 503/504 whose write had landed appends the same ``FeedbackRecorded``
(or ``SeedsUploaded``) again. The projector keeps the first; the optimizer's trigger must
count it once too, on the live fold and on a rebuild from the log alike.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from services.optimizer.adapters import StateStore
from services.optimizer.domain import (
    TaskState,
    decide_on_feedback,
    evolve,
    first_sightings,
    recorded_ids,
)
from services.optimizer.fold import Trigger
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.events.tasks import TaskCreated
from shared.kafka.consumer import Delivery
from shared.kafka.offsets import local_state_engine
from shared.kafka.producer import EventLog

TASK = uuid.uuid4()
IDS = [uuid.uuid4() for _ in range(6)]


def feedback(feedback_id: uuid.UUID, source: str = "sdk") -> fb.FeedbackRecorded:
    return fb.FeedbackRecorded(
        feedback_id=feedback_id, task_id=TASK, inputs={"t": "x"}, output="o", score=1, source=source
    )


def seeds(*ids: uuid.UUID) -> fb.SeedsUploaded:
    return fb.SeedsUploaded(
        task_id=TASK,
        upload_id=uuid.uuid4(),
        seeds=[fb.Seed(feedback_id=i, inputs={"t": "x"}, output="o", score=1) for i in ids],
    )


def created(threshold: int) -> TaskCreated:
    return TaskCreated(task_id=TASK, name="t", request_id="r", feedback_threshold=threshold)


def fold(
    history: list[Event], first: dict[uuid.UUID, int] | None = None
) -> tuple[TaskState, list[jb.JobRequested]]:
    """Fold ``history`` as the optimizer does; ``first`` is its examples table (ids → first offset)."""
    table = {} if first is None else first
    state, jobs = TaskState(task_id=TASK), []
    for offset, raw in enumerate(history):
        event = first_sightings(raw, table, offset)
        if event is None:
            continue
        for i in recorded_ids(event):
            table.setdefault(i, offset)
        state = evolve(state, event, offset)
        if isinstance(event, fb.FeedbackRecorded):
            for decided in decide_on_feedback(state, offset):
                assert isinstance(decided, jb.JobRequested)
                state = evolve(state, decided, offset)
                jobs.append(decided)
    return state, jobs


# Live feedback in which any event may be re-appended right behind itself, or much later:
# an id's first appearance is the original, any later one a copy of it.
histories = st.lists(st.sampled_from(IDS), min_size=1, max_size=30).map(
    lambda ids: [feedback(i) for i in ids]
)


def test_a_copy_of_feedback_moves_neither_the_threshold_nor_the_examples() -> None:
    original = feedback(IDS[0])
    state, jobs = fold([created(2), original, original, original])
    assert (state.live_since_cutoff, state.examples, jobs) == (1, 1, [])
    state, jobs = fold([created(2), original, original, feedback(IDS[1])])
    assert [job.log_offset for job in jobs] == [3] and jobs[0].feedback_count == 2


def test_a_re_appended_seed_upload_counts_only_the_seeds_it_adds() -> None:
    state, _ = fold([created(5), seeds(IDS[0], IDS[1]), seeds(IDS[0], IDS[1]), seeds(IDS[1], IDS[2])])
    assert (state.examples, state.live_since_cutoff) == (3, 0)


@given(histories, st.integers(min_value=1, max_value=8))
def test_each_feedback_id_counts_once_and_a_rebuild_counts_the_same(
    history: list[fb.FeedbackRecorded], threshold: int
) -> None:
    events: list[Event] = [created(threshold), *history]
    state, jobs = fold(events)
    distinct = len({e.feedback_id for e in history})
    assert state.examples == distinct
    assert [j.feedback_count for j in jobs] == ([threshold] if distinct >= threshold else [])
    # A rebuild into an empty store, and one over the examples table of an earlier fold.
    table: dict[uuid.UUID, int] = {}
    assert fold(events, table) == (state, jobs)
    assert fold(events, table) == (state, jobs)


# --- the real fold over the real state store (SQLite), without Kafka -----------------------


class Recorder:
    """Stands in for the event log: remembers what the trigger appends."""

    def __init__(self) -> None:
        self.appended: list[Envelope] = []

    async def append_all(self, envelopes: list[Envelope]) -> None:
        self.appended += envelopes


def deliveries(events: list[Event], start: int = 0) -> list[Delivery]:
    return [
        Delivery("tasks", 0, offset, Envelope.wrap(e, source="api"), cast(Any, None))
        for offset, e in enumerate(events, start)
    ]


async def fold_into(path: Path, batches: list[list[Delivery]]) -> tuple[TaskState, list[Envelope]]:
    engine = local_state_engine(path)
    try:
        store = StateStore(engine)
        await store.create()
        log = Recorder()
        trigger = Trigger(store, cast(EventLog, log), "tests")
        for batch in batches:
            await trigger.apply(batch)
        async with engine.connect() as conn:
            state, _ = await StateStore.task(conn, TASK)
        return state, log.appended
    finally:
        await engine.dispose()


async def test_the_optimizer_fold_counts_a_re_appended_feedback_once(tmp_path: Path) -> None:
    first, second, third = feedback(IDS[0]), feedback(IDS[1]), feedback(IDS[2])
    history = deliveries([created(3), first, first, second, second, third])
    # One event per batch, as a slow consumer sees it, and all in one batch.
    one_by_one, appended = await fold_into(tmp_path / "a.db", [[d] for d in history])
    together, again = await fold_into(tmp_path / "b.db", [history])
    assert one_by_one == together
    assert (one_by_one.examples, one_by_one.live_since_cutoff) == (3, 0)
    [job] = [e.data for e in appended]
    assert isinstance(job, jb.JobRequested) and job.log_offset == 5 and job.feedback_count == 3
    assert [e.id for e in again] == [e.id for e in appended]
