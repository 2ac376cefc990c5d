"""The optimizer's trigger and the PR publisher, over their real SQLite state, decide as the projector.

Each history is folded by the optimizer's ``Trigger`` and the publisher's ``Fold`` (the
classes the services run, over the state stores they run with, without Kafka) and compared,
request by request, with the reference of ``test_decisions.py``, which only asks
``shared.decisions`` and which the projector's fold is checked against. A rejected request
changes nothing: no merged settings, no import, no new active prompt.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any, cast

from hypothesis import given, settings
from sqlalchemy import JSON, Column, MetaData, String, Table, select, text

from services.optimizer.adapters import StateStore, prompt_texts
from services.optimizer.domain import task_life
from services.optimizer.fold import Trigger
from services.pr_publisher import state as publisher_state
from services.pr_publisher.bootstrap import Fold
from services.pr_publisher.state import PublisherState
from shared.decisions import TaskLife
from shared.events import prompts
from shared.events import tasks as tk
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.kafka.consumer import Delivery
from shared.kafka.offsets import local_state_engine, offsets_table
from shared.kafka.producer import EventLog
from tests.unit.test_decisions import (
    TASK,
    VERSIONS,
    Seen,
    activate,
    create,
    envelope,
    histories,
    projector_fold,
    reference,
    update,
    version,
)

GIT = {
    "git_provider": "github",
    "git_repo": "o/r",
    "git_token_encrypted": "ciphertext",
    "prompt_path": "prompt.txt",
}


def delivery(event: Event, offset: int) -> Delivery:
    return Delivery("tasks", 0, offset, envelope(event, offset), cast(Any, None))


class Recorder:
    """Stands in for the event log: remembers what the trigger appends."""

    def __init__(self) -> None:
        self.appended: list[Envelope] = []

    async def append_all(self, envelopes: list[Envelope]) -> None:
        self.appended += envelopes


# --- the optimizer's trigger ---------------------------------------------------------------


async def optimizer_fold(path: Path, history: list[Event]) -> list[Seen]:
    """What the optimizer's store holds after each event (one batch per event, as a slow consumer)."""
    engine = local_state_engine(path)
    try:
        store = StateStore(engine)
        await store.create()
        trigger = Trigger(store, cast(EventLog, Recorder()), "tests")
        after: list[Seen] = []
        for offset, event in enumerate(history):
            await trigger.apply([delivery(event, offset)])
            async with engine.connect() as conn:
                state, stored = await StateStore.task(conn, TASK)
                texts = (
                    await conn.execute(select(prompt_texts).where(prompt_texts.c.task_id == str(TASK)))
                ).all()
            seen = Seen(life=task_life(state), statuses=dict(state.versions))
            if "feedback_threshold" in stored:
                seen.threshold, seen.description = stored["feedback_threshold"], stored["description"]
            seen.texts = {row.version_id: row.text for row in texts}
            if "_active_prompt" in stored:
                seen.texts["active"] = stored["_active_prompt"]
            after.append(seen)
        return after
    finally:
        await engine.dispose()


def optimizer_view_of(seen: Seen) -> Seen:
    """The reference as the optimizer keeps it: the active version's text under ``active``."""
    expected = seen.copy()
    active = [v for v, status in seen.statuses.items() if status == "active"]
    if active:
        expected.texts["active"] = seen.texts[active[0]]
    return expected


def reference_with_active_texts(history: list[Event]) -> list[Seen]:
    """The reference, where the last accepted activation's text stays the optimizer's baseline."""
    _, after = reference(history)
    out, last_active = [], None
    for seen in after:
        expected = optimizer_view_of(seen)
        last_active = expected.texts.get("active", last_active)
        if last_active is not None:
            expected.texts["active"] = last_active
        out.append(expected)
    return out


@settings(max_examples=40, deadline=None)
@given(histories(max_size=10))
def test_the_optimizer_trigger_over_its_store_reaches_the_verdicts_of_shared_decisions(
    history: list[Event],
) -> None:
    expected = reference_with_active_texts(history)
    with tempfile.TemporaryDirectory() as tmp:
        assert asyncio.run(optimizer_fold(Path(tmp) / "o.db", history)) == expected


# --- the PR publisher ------------------------------------------------------------------------


async def publisher_seen(state: PublisherState) -> Seen:
    async with state.engine.connect() as conn:
        seen = Seen(life=await PublisherState.task_life(conn, str(TASK)))
        stored = await PublisherState.task_settings(conn, str(TASK))
        if stored:
            seen.threshold, seen.description = stored["feedback_threshold"], stored["description"]
        for row in await conn.execute(select(publisher_state.versions)):
            seen.statuses[row.id], seen.texts[row.id] = row.status, row.prompt_text
    return seen


async def publisher_fold(path: Path, history: list[Event]) -> tuple[list[Seen], list[Any]]:
    """What the publisher's state holds after each event, and its import requests at the end."""
    engine = local_state_engine(path)
    try:
        state = PublisherState(engine)
        await state.create()
        fold, after = Fold(state, cast(EventLog, Recorder()), "tests"), []
        for offset, event in enumerate(history):
            await fold.apply([delivery(event, offset)])
            after.append(await publisher_seen(state))
        async with engine.connect() as conn:
            imports = (await conn.execute(select(publisher_state.imports))).all()
        return after, imports
    finally:
        await engine.dispose()


@settings(max_examples=40, deadline=None)
@given(histories(max_size=10))
def test_the_publisher_over_its_store_reaches_the_verdicts_of_shared_decisions(history: list[Event]) -> None:
    _, expected = reference(history)
    with tempfile.TemporaryDirectory() as tmp:
        after, _ = asyncio.run(publisher_fold(Path(tmp) / "p.db", history))
    assert after == expected


# --- the former disagreements, one example each ------------------------------------------------


def with_git(event: tk.TaskUpdated) -> tk.TaskUpdated:
    return event.model_copy(update={"changes": {**event.changes, **GIT}})


async def test_an_update_of_a_missing_task_is_merged_nowhere_and_imports_nothing(tmp_path: Path) -> None:
    history: list[Event] = [with_git(update(0, 3))]
    outcomes, _ = projector_fold(history)
    assert outcomes[0].reason == "task_missing"
    [optimizer_seen] = await optimizer_fold(tmp_path / "o.db", history)
    [publisher_seen_], imports = await publisher_fold(tmp_path / "p.db", history)
    assert optimizer_seen == publisher_seen_ == Seen()
    assert imports == []


async def test_an_update_of_a_deleted_task_imports_nothing_and_deletion_drops_a_pending_import(
    tmp_path: Path,
) -> None:
    created = create(0, 5).model_copy(update=GIT)
    history: list[Event] = [created, tk.TaskDeleted(task_id=TASK), with_git(update(2, 1))]
    after, imports = await publisher_fold(tmp_path / "p.db", history)
    assert [s.life for s in after] == [TaskLife.LIVE, TaskLife.DELETED, TaskLife.DELETED]
    assert after[-1].threshold == 5
    # The create asked for an import; the deleted task's file is never read.
    assert [(r.request_id, r.status) for r in imports] == [(str(envelope(created, 0).id), "superseded")]


async def test_a_create_of_a_deleted_task_id_replaces_the_settings_nowhere(tmp_path: Path) -> None:
    history: list[Event] = [create(0, 5), tk.TaskDeleted(task_id=TASK), create(2, 1)]
    outcomes, _ = projector_fold(history)
    assert outcomes[2].reason == "duplicate_name"
    optimizer_after = await optimizer_fold(tmp_path / "o.db", history)
    publisher_after, _ = await publisher_fold(tmp_path / "p.db", history)
    for after in (optimizer_after, publisher_after):
        assert (after[-1].life, after[-1].threshold, after[-1].description) == (
            TaskLife.DELETED,
            5,
            "created 0",
        )


async def test_an_archived_version_becomes_neither_the_publishers_nor_the_optimizers_active_prompt(
    tmp_path: Path,
) -> None:
    history: list[Event] = [create(0, 5), version(1, 0), version(2, 1), activate(0), activate(1), activate(0)]
    outcomes, _ = projector_fold(history)
    assert outcomes[5].detail == "the version is archived, not a draft"
    publisher_after, _ = await publisher_fold(tmp_path / "p.db", history)
    assert publisher_after[-1].statuses == {str(VERSIONS[0]): "archived", str(VERSIONS[1]): "active"}
    optimizer_after = await optimizer_fold(tmp_path / "o.db", history)
    assert optimizer_after[-1].texts["active"] == "text 1 at 2"


async def test_activating_a_draft_older_than_many_others_makes_its_text_the_optimizers_baseline(
    tmp_path: Path,
) -> None:
    drafts = [
        prompts.PromptVersionCreated(
            prompt_version_id=uuid.UUID(int=1000 + k),
            task_id=TASK,
            job_id=None,
            prompt_text=f"draft {k}",
            source="user",
        )
        for k in range(30)
    ]
    oldest = prompts.PromptActivated(task_id=TASK, prompt_version_id=drafts[0].prompt_version_id)
    after = await optimizer_fold(tmp_path / "o.db", [create(0, 5), *drafts, oldest])
    assert after[-1].texts["active"] == "draft 0"


async def test_a_copy_of_a_version_keeps_the_first_text_in_the_publisher(tmp_path: Path) -> None:
    history: list[Event] = [create(0, 5), version(1, 0), version(2, 0)]
    after, _ = await publisher_fold(tmp_path / "p.db", history)
    assert after[-1].texts == {str(VERSIONS[0]): "text 0 at 1"}


# --- the publisher's state written by older code ------------------------------------------------

#: Some tables of the publisher's fold before ADR 0006: no deletions, no version statuses.
OLD_FOLD = MetaData()
offsets_table(OLD_FOLD)
Table("tasks", OLD_FOLD, Column("task_id", String(36), primary_key=True), Column("settings", JSON))
Table(
    "active_versions", OLD_FOLD, Column("task_id", String(36), primary_key=True), Column("version_id", String)
)


async def test_a_publisher_state_of_an_older_fold_is_emptied_so_the_log_is_folded_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.db"
    engine = local_state_engine(path)
    try:
        async with engine.begin() as conn:  # the tables as the fold before ADR 0006 made them
            await conn.run_sync(OLD_FOLD.create_all)
            await conn.execute(text("""INSERT INTO tasks VALUES ('t', '{}')"""))
            await conn.execute(text("INSERT INTO offsets VALUES ('tasks', 0, 42)"))
        state = PublisherState(engine)
        await state.create()
        async with engine.connect() as conn:
            tables = {
                r[0] for r in await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
            }
            assert await conn.scalar(text("SELECT count(*) FROM tasks")) == 0
            assert await conn.scalar(text("SELECT count(*) FROM offsets")) == 0  # read from the start
        assert "active_versions" not in tables and {"fold_version", "versions", "imports"} <= tables
        # The refold works on the new tables.
        await Fold(state, cast(EventLog, Recorder()), "tests").apply(
            [delivery(create(0, 5), 0), delivery(tk.TaskDeleted(task_id=TASK), 1)]
        )
        assert (await publisher_seen(state)).life is TaskLife.DELETED
    finally:
        await engine.dispose()


async def test_a_publisher_state_of_the_current_fold_is_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    for _ in range(2):
        engine = local_state_engine(path)
        try:
            state = PublisherState(engine)
            await state.create()
            await Fold(state, cast(EventLog, Recorder()), "tests").apply([delivery(create(0, 5), 0)])
        finally:
            await engine.dispose()
    engine = local_state_engine(path)
    try:
        state = PublisherState(engine)
        await state.create()
        assert (await publisher_seen(state)).life is TaskLife.LIVE
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT next_offset FROM offsets")) == 1
    finally:
        await engine.dispose()
