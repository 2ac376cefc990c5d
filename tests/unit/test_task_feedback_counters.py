"""How a batch's fold changes its tasks' feedback counters (``tasks.live_feedback``, ``live_since_cutoff``).

The fold only decides what to add and which tasks to count again from their rows; the
database applies it after the batch's rows are written (``adapters.count_feedback``,
tested against real databases in ``tests/integration/test_task_feedback_counters.py``).
A task's figures must stay what counting its rows gave: live feedback (every source but
seed), each id once, and of it what lies after the task's last job's cut-off.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.projector.handlers import Fact, evolve, wanted
from services.projector.view import View
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events import tasks as tk
from shared.events.base import Event
from shared.events.envelope import Envelope

TASK = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fact(event: Event, offset: int) -> Fact:
    envelope = Envelope.wrap(event, source="test", time=T0 + timedelta(seconds=offset))
    return Fact(envelope, "tasks", 0, offset)


def feedback(n: int, task: uuid.UUID = TASK, source: Any = "sdk") -> fb.FeedbackRecorded:
    return fb.FeedbackRecorded(
        feedback_id=uuid.UUID(int=100 + n), task_id=task, inputs={}, output="o", score=0.5, source=source
    )


def job_requested(cutoff: int, task: uuid.UUID = TASK) -> jb.JobRequested:
    return jb.JobRequested(
        job_id=uuid.uuid4(), task_id=task, triggered_by="auto_threshold", feedback_count=1, log_offset=cutoff
    )


def stored_task(cutoff: int = -1, task: uuid.UUID = TASK) -> dict[str, Any]:
    """A task's row as the database holds it before the batch."""
    return {
        "id": str(task),
        "name": "t",
        "name_key": "t",
        "settings": {},
        "git_token_encrypted": None,
        "deleted": False,
        "created_at": T0,
        "updated_at": T0,
        "last_job_cutoff": cutoff,
        "live_feedback": 7,
        "live_since_cutoff": 3,
    }


def fold(view: View, *facts: Fact) -> View:
    for f in facts:
        evolve(view, f)
    return view


def with_task(cutoff: int = -1) -> View:
    view = View()
    view.tasks.seed([stored_task(cutoff)])
    return view


def test_live_feedback_on_a_stored_task_adds_one_and_one_since_the_cutoff() -> None:
    view = fold(with_task(cutoff=4), fact(feedback(1), 5), fact(feedback(2, source="user_rating"), 6))
    assert view.feedback_counts.added == {str(TASK): [2, 2]}


def test_feedback_at_or_before_the_cutoff_counts_as_live_but_not_since_the_cutoff() -> None:
    view = fold(with_task(cutoff=5), fact(feedback(1), 4), fact(feedback(2), 5), fact(feedback(3), 6))
    assert view.feedback_counts.added == {str(TASK): [3, 1]}


def test_seeds_never_count_whichever_event_carries_them() -> None:
    seeds = fb.SeedsUploaded(
        task_id=TASK,
        upload_id=uuid.uuid4(),
        seeds=[fb.Seed(feedback_id=uuid.UUID(int=200), inputs={}, output="o")],
    )
    view = fold(with_task(), fact(seeds, 1), fact(feedback(1, source="seed"), 2))
    assert not view.feedback_counts
    assert len(view.feedback.first) == 2  # both rows are stored all the same


def test_feedback_redelivered_in_the_same_batch_counts_once() -> None:
    once = fact(feedback(1), 3)
    view = fold(with_task(), once, once, fact(feedback(1), 9))  # the same id re-sent at a later offset too
    assert view.feedback_counts.added == {str(TASK): [1, 1]}


def test_feedback_whose_id_the_table_holds_already_counts_nothing() -> None:
    view = with_task()
    view.feedback.seed_keys([(str(uuid.UUID(int=101)),)])
    fold(view, fact(feedback(1), 3), fact(feedback(2), 4))
    assert view.feedback_counts.added == {str(TASK): [1, 1]}


def test_feedback_reusing_a_seed_s_id_counts_nothing_because_the_seed_row_wins() -> None:
    seed = fb.Seed(feedback_id=uuid.UUID(int=101), inputs={}, output="o")
    view = fold(
        with_task(),
        fact(fb.SeedsUploaded(task_id=TASK, upload_id=uuid.uuid4(), seeds=[seed]), 1),
        fact(feedback(1), 2),
    )
    assert not view.feedback_counts


def test_an_id_first_stored_for_another_task_counts_for_neither() -> None:
    view = View()
    view.tasks.seed([stored_task(task=TASK), stored_task(task=OTHER)])
    fold(view, fact(feedback(1, task=OTHER), 1), fact(feedback(1, task=TASK), 2))
    assert view.feedback_counts.added == {str(OTHER): [1, 1]}


def test_feedback_for_a_deleted_task_still_counts_as_the_rows_did() -> None:
    view = fold(with_task(), fact(tk.TaskDeleted(task_id=TASK), 1), fact(feedback(1), 2))
    assert view.feedback_counts.added == {str(TASK): [1, 1]}


def test_feedback_for_a_task_that_does_not_exist_counts_nowhere() -> None:
    view = fold(View(), fact(feedback(1), 1))
    assert not view.feedback_counts
    assert len(view.feedback.first) == 1  # the row is kept: it counts once its task is created


def test_creating_a_task_counts_its_earlier_feedback_again_from_the_rows() -> None:
    created = tk.TaskCreated(task_id=TASK, name="t", request_id="r")
    view = fold(View(), fact(feedback(1), 1), fact(created, 2), fact(feedback(2), 3))
    assert view.feedback_counts.recount_all == {str(TASK)}
    [row] = [r for r in view.tasks.changes().upserts if r["id"] == str(TASK)]
    assert (row["live_feedback"], row["live_since_cutoff"]) == (0, 0)  # never NULL, counted after the write


def test_a_moved_cutoff_counts_the_feedback_since_it_again_and_keeps_adding_to_the_live_count() -> None:
    view = fold(
        with_task(cutoff=-1), fact(feedback(1), 1), fact(job_requested(cutoff=1), 2), fact(feedback(2), 3)
    )
    assert view.feedback_counts.recount_since == {str(TASK)}
    assert view.feedback_counts.added[str(TASK)][0] == 2


def test_a_job_request_for_a_missing_task_moves_no_cutoff() -> None:
    view = fold(View(), fact(job_requested(cutoff=1), 2))
    assert not view.feedback_counts


def test_the_counters_ride_on_the_tasks_changes_and_the_task_rows_keep_their_loaded_counters() -> None:
    view = fold(
        with_task(), fact(tk.TaskUpdated(task_id=TASK, changes={"description": "d"}), 1), fact(feedback(1), 2)
    )
    [tasks] = [c for c in view.changes() if c.table.name == "tasks"]
    assert tasks.counts is view.feedback_counts
    assert [(r["live_feedback"], r["live_since_cutoff"]) for r in tasks.upserts] == [(7, 3)]


def test_a_batch_of_feedback_only_still_writes_its_counters() -> None:
    view = fold(with_task(), fact(feedback(1), 1))
    assert [c.table.name for c in view.changes() if c.counts] == ["tasks"]


def test_a_batch_loads_the_ids_and_tasks_of_its_live_feedback_only() -> None:
    w = wanted([fact(feedback(1), 1), fact(feedback(2, task=OTHER, source="seed"), 2)])
    assert w.feedback_ids == {str(uuid.UUID(int=101))}
    assert w.task_ids == {str(TASK)}
