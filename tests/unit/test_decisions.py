"""Each request about a task or a prompt version is decided once, by ``shared.decisions``.

The projector's fold and the optimizer's domain fold the same history to the same verdicts
as a reference that only asks ``shared.decisions``: any interleaving of creates, updates,
deletes, version creations and activations (docs/adr/0006-decide-once.md). The PR
publisher and the optimizer's handlers keep their state in SQLite; they are checked against
the same reference in ``test_decisions_in_consumers.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.optimizer import domain as optimizer
from services.projector.handlers import Fact
from services.projector.handlers import evolve as project
from services.projector.view import View
from shared import decisions
from shared.decisions import TaskLife, Verdict, VersionStatus
from shared.events import prompts
from shared.events import tasks as tk
from shared.events.base import Event
from shared.events.envelope import Envelope

TASK = uuid.UUID(int=7)
#: Versions a history may create; the last one is never created, so activating it names nothing.
VERSIONS = [uuid.UUID(int=100 + i) for i in range(4)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --- the functions themselves ----------------------------------------------------------------


def test_the_first_create_of_a_task_id_is_accepted_and_any_later_one_rejected() -> None:
    assert decisions.decide_task_created(TaskLife.ABSENT, "t").accepted
    for life in (TaskLife.LIVE, TaskLife.DELETED):
        verdict = decisions.decide_task_created(life, "t")
        assert (verdict.reason, verdict.detail) == ("duplicate_name", "a task named 't' exists")


def test_only_a_live_task_is_updated_or_deleted() -> None:
    for decide in (decisions.decide_task_updated, decisions.decide_task_deleted):
        assert decide(TaskLife.LIVE).accepted
        for life in (TaskLife.ABSENT, TaskLife.DELETED):
            assert decide(life) == Verdict(False, "task_missing", "the task does not exist")


def test_only_a_draft_of_the_task_is_activated_and_the_detail_says_why_not() -> None:
    assert decisions.decide_prompt_activated("draft").accepted
    assert decisions.decide_prompt_activated(None).detail == "the version does not exist"
    assert decisions.decide_prompt_activated("archived").detail == "the version is archived, not a draft"
    assert decisions.decide_prompt_activated("active").reason == "not_draft"


def test_the_first_version_of_an_id_wins() -> None:
    assert decisions.decide_version_created(False).accepted
    assert decisions.decide_version_created(True).reason == "duplicate_version"


# --- histories and the reference that only asks shared.decisions -----------------------------


def create(i: int, threshold: int) -> tk.TaskCreated:
    return tk.TaskCreated(
        task_id=TASK, name="t", request_id=f"r{i}", feedback_threshold=threshold, description=f"created {i}"
    )


def update(i: int, threshold: int) -> tk.TaskUpdated:
    return tk.TaskUpdated(
        task_id=TASK, changes={"feedback_threshold": threshold, "description": f"updated {i}"}
    )


def version(i: int, k: int) -> prompts.PromptVersionCreated:
    return prompts.PromptVersionCreated(
        prompt_version_id=VERSIONS[k],
        task_id=TASK,
        job_id=None,
        prompt_text=f"text {k} at {i}",
        source="user",
    )


def activate(k: int) -> prompts.PromptActivated:
    return prompts.PromptActivated(task_id=TASK, prompt_version_id=VERSIONS[k])


@st.composite
def histories(draw: st.DrawFn, max_size: int = 14) -> list[Event]:
    """Requests about one task in any order; most start with a create, as real ones do."""
    steps = st.one_of(
        st.integers(1, 9).map(lambda n: ("create", n)),
        st.integers(1, 9).map(lambda n: ("update", n)),
        st.just(("delete", 0)),
        st.integers(0, len(VERSIONS) - 2).map(lambda k: ("version", k)),
        st.integers(0, len(VERSIONS) - 1).map(lambda k: ("activate", k)),
    )
    drawn = draw(st.lists(steps, max_size=max_size))
    if draw(st.booleans()):
        drawn.insert(0, ("create", 5))
    made = {"create": create, "update": update, "version": version}
    return [
        tk.TaskDeleted(task_id=TASK)
        if kind == "delete"
        else activate(n)
        if kind == "activate"
        else made[kind](i, n)  # type: ignore[operator]
        for i, (kind, n) in enumerate(drawn)
    ]


@dataclass
class Seen:
    """What every consumer must agree on after each request."""

    life: TaskLife = TaskLife.ABSENT
    threshold: int | None = None
    description: str | None = None
    statuses: dict[str, VersionStatus] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def copy(self) -> Seen:
        return Seen(self.life, self.threshold, self.description, dict(self.statuses), dict(self.texts))


def reference(history: list[Event]) -> tuple[list[Verdict], list[Seen]]:
    """Each request's verdict from shared.decisions, and what is known after it."""
    seen, verdicts, after = Seen(), [], []
    for event in history:
        match event:
            case tk.TaskCreated():
                verdict = decisions.decide_task_created(seen.life, event.name)
                if verdict.accepted:
                    seen.life, seen.threshold = TaskLife.LIVE, event.feedback_threshold
                    seen.description = event.description
            case tk.TaskUpdated(changes=changes):
                verdict = decisions.decide_task_updated(seen.life)
                if verdict.accepted:
                    seen.threshold, seen.description = changes["feedback_threshold"], changes["description"]
            case tk.TaskDeleted():
                verdict = decisions.decide_task_deleted(seen.life)
                if verdict.accepted:
                    seen.life = TaskLife.DELETED
            case prompts.PromptVersionCreated(prompt_version_id=v):
                verdict = decisions.decide_version_created(str(v) in seen.statuses)
                if verdict.accepted:
                    seen.statuses[str(v)], seen.texts[str(v)] = "draft", event.prompt_text
            case prompts.PromptActivated(prompt_version_id=v):
                verdict = decisions.decide_prompt_activated(seen.statuses.get(str(v)))
                if verdict.accepted:
                    seen.statuses = {k: "archived" if s == "active" else s for k, s in seen.statuses.items()}
                    seen.statuses[str(v)] = "active"
        verdicts.append(verdict)
        after.append(seen.copy())
    return verdicts, after


def envelope(event: Event, offset: int) -> Envelope:
    """The request ``offset`` of a history, with its own request id (so its outcome is its own)."""
    return Envelope.wrap(
        event,
        source="api",
        id=uuid.UUID(int=10_000 + offset),
        correlation_id=f"req-{offset}",
        time=T0 + timedelta(seconds=offset),
    )


# --- the projector ---------------------------------------------------------------------------


def projector_seen(view: View) -> Seen:
    row = view.tasks.get(str(TASK))
    seen = Seen()
    if row is not None:
        seen.life = TaskLife.DELETED if row["deleted"] else TaskLife.LIVE
        seen.threshold, seen.description = (
            row["settings"]["feedback_threshold"],
            row["settings"]["description"],
        )
    for r in view.prompt_versions.rows.values():
        seen.statuses[r["id"]], seen.texts[r["id"]] = r["status"], r["prompt_text"]
    return seen


def projector_fold(history: list[Event]) -> tuple[dict[int, Verdict], list[Seen]]:
    """The outcome rows the API answers from (by request), and the read model after each event."""
    view, after = View(), []
    for offset, event in enumerate(history):
        project(view, Fact(envelope(event, offset), "tasks", 0, offset))
        after.append(projector_seen(view))
    outcomes = {int(r["request_id"].split("-")[1]): r for r in view.request_outcomes.first.values()}
    return {
        offset: Verdict(r["outcome"] == "accepted", r["reason"], r["detail"])
        for offset, r in outcomes.items()
    }, after


@settings(max_examples=300, deadline=None)
@given(histories())
def test_the_projector_reaches_the_verdicts_of_shared_decisions(history: list[Event]) -> None:
    verdicts, after = reference(history)
    outcomes, projected = projector_fold(history)
    assert projected == after
    # The API waits on creates, updates and activations; their outcome rows are the verdicts.
    answered = (tk.TaskCreated, tk.TaskUpdated, prompts.PromptActivated)
    assert outcomes == {
        i: v for i, (e, v) in enumerate(zip(history, verdicts, strict=True)) if isinstance(e, answered)
    }


# --- the optimizer's domain ------------------------------------------------------------------


def optimizer_seen(state: optimizer.TaskState, before: Seen) -> Seen:
    seen = before.copy()  # descriptions and texts live in the handlers' settings, not the state
    seen.life, seen.statuses = optimizer.task_life(state), dict(state.versions)
    seen.threshold = state.threshold if seen.life is not TaskLife.ABSENT else None
    return seen


@settings(max_examples=300, deadline=None)
@given(histories())
def test_the_optimizer_domain_reaches_the_verdicts_of_shared_decisions(history: list[Event]) -> None:
    verdicts, after = reference(history)
    state = optimizer.TaskState(task_id=TASK)
    for offset, (event, verdict, expected) in enumerate(zip(history, verdicts, after, strict=True)):
        state = optimizer.evolve(state, event, offset)
        assert (state.accepted_at == offset) == verdict.accepted, (offset, event)
        assert optimizer_seen(state, expected) == expected


@settings(max_examples=100, deadline=None)
@given(histories())
def test_folding_a_rejected_request_leaves_the_optimizer_state_as_it_was(history: list[Event]) -> None:
    verdicts, _ = reference(history)
    state = optimizer.TaskState(task_id=TASK)
    for offset, (event, verdict) in enumerate(zip(history, verdicts, strict=True)):
        after = optimizer.evolve(state, event, offset)
        if verdict.rejected:
            assert after == state
        state = after


# --- the former disagreements, one example each ------------------------------------------------


def outcome_of(history: list[Event], offset: int) -> Any:
    outcomes, _ = projector_fold(history)
    return outcomes[offset]


def test_an_update_of_a_deleted_task_moves_no_threshold_in_the_optimizer() -> None:
    history: list[Event] = [create(0, 5), tk.TaskDeleted(task_id=TASK), update(2, 1)]
    assert outcome_of(history, 2).reason == "task_missing"
    state = optimizer.TaskState(task_id=TASK)
    for offset, event in enumerate(history):
        state = optimizer.evolve(state, event, offset)
    assert (state.threshold, state.accepted_at, optimizer.task_life(state)) == (5, 1, TaskLife.DELETED)


def test_a_create_of_a_deleted_task_id_revives_it_nowhere() -> None:
    history: list[Event] = [create(0, 5), tk.TaskDeleted(task_id=TASK), create(2, 1)]
    assert outcome_of(history, 2).reason == "duplicate_name"
    state = optimizer.TaskState(task_id=TASK)
    for offset, event in enumerate(history):
        state = optimizer.evolve(state, event, offset)
    assert (state.exists, state.threshold) == (False, 5)
    assert optimizer.decide_on_feedback(state, 3) == []


def test_an_archived_version_is_activated_again_nowhere() -> None:
    history: list[Event] = [create(0, 5), version(1, 0), version(2, 1), activate(0), activate(1), activate(0)]
    assert outcome_of(history, 5).detail == "the version is archived, not a draft"
    state = optimizer.TaskState(task_id=TASK)
    for offset, event in enumerate(history):
        state = optimizer.evolve(state, event, offset)
    assert state.versions == {str(VERSIONS[0]): "archived", str(VERSIONS[1]): "active"}
    assert state.accepted_at == 4


def test_a_second_deletion_leaves_the_read_model_row_as_the_first_left_it() -> None:
    history: list[Event] = [create(0, 5), tk.TaskDeleted(task_id=TASK), tk.TaskDeleted(task_id=TASK)]
    view = View()
    for offset, event in enumerate(history):
        project(view, Fact(envelope(event, offset), "tasks", 0, offset))
    row = view.tasks.get(str(TASK))
    assert row is not None and row["deleted"] and row["updated_at"] == T0 + timedelta(seconds=1)
