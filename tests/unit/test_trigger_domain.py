"""The trigger's rules, as pure functions over a task's state."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.optimizer.domain import TaskState, decide_on_feedback, decide_on_request, evolve
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events.base import Event
from shared.events.tasks import TaskCreated

TASK = uuid.uuid4()


def created(threshold: int = 3) -> TaskState:
    state = TaskState(task_id=TASK)
    return evolve(state, TaskCreated(task_id=TASK, name="t", request_id="r", feedback_threshold=threshold), 0)


def live(source: str = "sdk") -> fb.FeedbackRecorded:
    return fb.FeedbackRecorded(
        feedback_id=uuid.uuid4(), task_id=TASK, inputs={}, output="o", score=1, source=source
    )


def feed(state: TaskState, n: int, start: int = 1) -> tuple[TaskState, list[Event]]:
    """Fold ``n`` live feedback events the way the optimizer does, returning what it emitted."""
    emitted: list[Event] = []
    for offset in range(start, start + n):
        state = evolve(state, live(), offset)
        for event in decide_on_feedback(state, offset):
            state = evolve(state, event, offset)
            emitted.append(event)
    return state, emitted


def test_the_threshold_crossing_requests_exactly_one_job() -> None:
    state, emitted = feed(created(3), 10)
    assert len(emitted) == 1
    job = emitted[0]
    assert isinstance(job, jb.JobRequested)
    assert job.triggered_by == "auto_threshold"
    assert job.log_offset == 3
    assert state.active_job == job.job_id


def test_the_auto_job_id_is_derived_from_the_task_and_offset() -> None:
    _, first = feed(created(3), 3)
    _, again = feed(created(3), 3)
    assert first[0].job_id == again[0].job_id  # type: ignore[attr-defined]


def test_seeds_train_but_never_count_toward_the_threshold() -> None:
    state = created(2)
    for offset in range(1, 5):
        state = evolve(state, live("seed"), offset)
        assert decide_on_feedback(state, offset) == []
    assert state.examples == 4


def test_after_a_failed_job_a_whole_new_threshold_is_needed() -> None:
    state, emitted = feed(created(3), 3)
    job_id = emitted[0].job_id  # type: ignore[attr-defined]
    state = evolve(state, jb.JobFailed(job_id=job_id, task_id=TASK, error_message="x", kind="error"), 4)
    assert decide_on_feedback(state, 4) == []
    state, emitted = feed(state, 2, start=5)
    assert emitted == []
    state, emitted = feed(state, 1, start=7)
    assert len(emitted) == 1


def test_a_manual_request_while_a_job_is_active_is_rejected() -> None:
    state, emitted = feed(created(3), 3)
    request = jb.OptimizationRequested(task_id=TASK, job_id=uuid.uuid4())
    [decision] = decide_on_request(state, request, 9)
    assert isinstance(decision, jb.OptimizationRejected)
    assert decision.reason == "job_active"
    assert decision.active_job_id == emitted[0].job_id  # type: ignore[attr-defined]


def test_a_manual_request_without_feedback_is_rejected_and_with_feedback_accepted() -> None:
    request = jb.OptimizationRequested(task_id=TASK, job_id=uuid.uuid4())
    [rejected] = decide_on_request(created(), request, 1)
    assert isinstance(rejected, jb.OptimizationRejected) and rejected.reason == "no_usable_feedback"
    state, _ = feed(created(100), 2)
    [accepted] = decide_on_request(state, request, 5)
    assert isinstance(accepted, jb.JobRequested)
    assert accepted.job_id == request.job_id and accepted.triggered_by == "api_on_demand"


def test_an_unknown_task_is_rejected() -> None:
    request = jb.OptimizationRequested(task_id=TASK, job_id=uuid.uuid4())
    [rejected] = decide_on_request(TaskState(task_id=TASK), request, 1)
    assert isinstance(rejected, jb.OptimizationRejected) and rejected.reason == "task_missing"


@given(st.integers(min_value=1, max_value=20), st.integers(min_value=0, max_value=200))
def test_folding_a_job_request_again_changes_nothing(threshold: int, n: int) -> None:
    state, emitted = feed(created(threshold), n)
    for event in emitted:
        assert evolve(state, event, 10_000) == state
    assert len(emitted) <= 1
