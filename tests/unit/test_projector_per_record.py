"""The projector's per-record shortcuts keep what they replaced: rows read, values checked, SQL prepared once.

``wanted`` dispatches on the event's type, an ``Appends`` table checks only the values its
written rows do not carry, the bulk writer binds column by column, and PostgreSQL reads a
batch's keys through one array parameter. Each test states the behaviour the slower form had.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from services.projector import adapters
from services.projector.handlers import HANDLERS, Fact, wanted
from services.projector.view import Appends
from shared.events.envelope import Envelope
from shared.readmodel import bulk
from shared.readmodel import tables as t


def _fact(event: Any) -> Fact:
    envelope = Envelope.model_construct(
        id=uuid.uuid4(), type="x", source="test", data=event, time=datetime.now(UTC)
    )
    return Fact(envelope, "kaizen.jobs", 0, 7)


def _with_ids(cls: Any) -> Any:
    """An event of ``cls``: every ``…_id`` field a fresh id, other required fields ``"x"``, defaults kept."""
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        if name.endswith("_id"):
            values[name] = uuid.uuid4()
        elif field.is_required():
            values[name] = "x"
    return cls.model_construct(**values)


def test_every_event_type_with_a_job_id_has_its_job_row_and_history_entry_wanted() -> None:
    of_a_job = [cls for cls in HANDLERS if "job_id" in cls.model_fields]
    assert len(of_a_job) > 10
    for cls in of_a_job:
        event = _with_ids(cls)
        fact = _fact(event)
        w = wanted([fact])
        assert w.job_ids == {str(event.job_id)}, cls.__name__
        assert w.event_ids == {str(fact.envelope.id)}, cls.__name__


def test_an_event_without_a_job_id_wants_no_job_row() -> None:
    for cls in HANDLERS:
        if "job_id" not in cls.model_fields:
            w = wanted([_fact(_with_ids(cls))])
            assert not w.job_ids and not w.event_ids, cls.__name__


def _feedback_row(feedback_id: str, score: float) -> dict[str, Any]:
    return {
        "id": feedback_id,
        "task_id": str(uuid.uuid4()),
        "inputs": {"text": "hi"},
        "output": {"label": "a"},
        "score": score,
        "source": "api",
        "metadata": {},
        "created_at": datetime.now(UTC),
        "log_offset": 3,
    }


def test_a_first_row_is_written_whole_so_none_of_its_values_is_checked_apart() -> None:
    rows = Appends(t.feedback)
    rows.add(_feedback_row("f1", 0.5))
    change = rows.changes()
    assert [r["id"] for r in change.inserts] == ["f1"]
    assert change.checks == []


def test_a_later_row_with_the_same_key_has_its_other_values_checked() -> None:
    rows = Appends(t.feedback)
    first = _feedback_row("f1", 0.5)
    rows.add(first)
    rows.add({**first, "score": 0.9})
    change = rows.changes()
    assert [r["score"] for r in change.inserts] == [0.5]
    assert change.checks == [{"score": 0.9}]


def test_rows_bind_column_by_column_as_they_bound_row_by_row() -> None:
    statement = t.feedback.insert()
    rows = [_feedback_row(f"f{i}", i / 10) for i in range(5)]
    prepared = bulk._compile(sqlite.dialect(), statement, tuple(rows[0]))
    assert prepared is not None
    by_row = [
        tuple(
            row[k] if p is None else p(row[k])
            for k, p in zip(prepared.keys, prepared.processors, strict=True)
        )
        for row in rows
    ]
    assert prepared.parameters(rows) == by_row
    assert prepared.parameters([]) == []


def test_a_postgresql_read_of_keys_is_one_statement_whatever_the_number_of_keys() -> None:
    dialect = postgresql.asyncpg.dialect()  # type: ignore[attr-defined,no-untyped-call]

    def sql(n: int) -> str:
        ids = [str(uuid.uuid4()) for _ in range(n)]
        return str(
            select(t.tasks.c.id).where(adapters._among_array(t.tasks.c.id, ids)).compile(dialect=dialect)
        )

    assert sql(1) == sql(3) == sql(2000)
    assert "ANY" in sql(1)
