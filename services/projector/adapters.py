"""The projector's reads and writes: a batch's rows in, its changes out, one statement per table.

Dialect-neutral (SQLite and PostgreSQL); offsets live in ``shared.kafka.offsets``.
Synchronous: the projection runs a whole batch transaction in one call
(``shared.readmodel.transactions.Transactions``), in a worker thread on SQLite.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    MetaData,
    Select,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.schema import CreateTable

from services.projector.view import Rows, TableChanges, View, Wanted
from shared.kafka.offsets import dialect_insert
from shared.readmodel import bulk
from shared.readmodel import tables as t

#: Keys per ``IN (…)``: far below SQLite's 32,766 bound parameters.
CHUNK = 2000


def load(conn: Connection, wanted: Wanted) -> View:
    """A view holding every row the batch's events read, as the database holds them now."""
    view = View()
    among = _among_array if conn.dialect.name == "postgresql" else _among_json
    keys = t.api_keys
    if wanted.all_keys:
        _seed(conn, view.api_keys, select(keys))
        view.all_keys = True
    else:
        for ids in _chunks(wanted.key_ids | wanted.key_hashes):
            query = select(keys).where(or_(among(keys.c.id, ids), among(keys.c.key_hash, ids)))
            _seed(conn, view.api_keys, query)
    for ids in _chunks(wanted.task_ids):
        _seed(conn, view.tasks, select(t.tasks).where(among(t.tasks.c.id, ids)))
    for ids in _chunks(wanted.feedback_ids):
        stored = conn.scalars(select(t.feedback.c.id).where(among(t.feedback.c.id, ids)))
        view.feedback.seed_keys((i,) for i in stored)
    for ids in _chunks(wanted.job_ids):
        _seed(conn, view.jobs, select(t.jobs).where(among(t.jobs.c.id, ids)))
    for ids in _chunks(wanted.event_ids):
        # Only whether the history holds the event matters; its row is never rewritten.
        query = select(t.job_events.c.event_id).where(among(t.job_events.c.event_id, ids))
        _seed(conn, view.job_events, query)
    for ids in _chunks(wanted.webhook_ids):
        query = select(t.webhook_subscriptions).where(among(t.webhook_subscriptions.c.id, ids))
        _seed(conn, view.webhook_subscriptions, query)
    versions = t.prompt_versions
    for ids in _chunks(wanted.version_ids):
        _seed(conn, view.prompt_versions, select(versions).where(among(versions.c.id, ids)))
    for ids in _chunks(wanted.active_versions_of):
        query = select(versions).where(among(versions.c.task_id, ids), versions.c.status == "active")
        _seed(conn, view.prompt_versions, query)
    for ids in _chunks(wanted.numbers_of):
        numbers = select(versions.c.task_id, func.max(versions.c.version_number))
        for task_id, number in conn.execute(
            numbers.where(among(versions.c.task_id, ids)).group_by(versions.c.task_id)
        ):
            view.last_version[task_id] = int(number)
    return view


def _among_json(column: Column[Any], ids: list[str]) -> ColumnElement[bool]:
    """``column IN (SELECT value FROM json_each(?))``: the keys in one JSON parameter (SQLite).

    SQLite has no arrays; ``IN (?, ?, …)`` with one placeholder per key was a new
    statement for every count of keys, rendered by SQLAlchemy and prepared by SQLite again
    each batch. The keys are ids and hashes, strings that JSON carries unchanged.
    """
    keys: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam(None, json.dumps(ids)))
    )
    return column.in_(keys.scalar_subquery())


def _among_array(column: Column[Any], ids: list[str]) -> ColumnElement[bool]:
    """``column = ANY($1)``, the keys in one array parameter (PostgreSQL).

    The statement's text is then the same whatever the number of keys, so asyncpg's cache
    of prepared statements keeps it; with ``IN (…)`` every batch's count of keys was a new
    statement, parsed and prepared again (about a tenth of a rebuild's CPU there).
    """
    return column == any_(bindparam(None, ids, type_=ARRAY(column.type)))


def _seed(conn: Connection, rows: Rows, query: Any) -> None:
    result = conn.execute(query)
    rows.seed(dict(r._mapping) for r in result)


def _chunks(keys: Iterable[str]) -> list[list[str]]:
    ordered = sorted(keys)
    return [ordered[i : i + CHUNK] for i in range(0, len(ordered), CHUNK)]


def write(conn: Connection, changes: Sequence[TableChanges]) -> None:
    """Each table's rows with one executemany, then the values the database must still accept."""
    for change in changes:
        if change.upserts:
            bulk.executemany(conn, _upsert(conn.dialect.name, change.table), change.upserts)
        if change.inserts:
            bulk.executemany(conn, _insert_new(conn.dialect.name, change.table), change.inserts)
    checked = [c for c in changes if c.checks]
    if checked:
        check(conn, checked)
    count_feedback(conn, changes)


def count_feedback(conn: Connection, changes: Sequence[TableChanges]) -> None:
    """Apply the batch's changes to its tasks' feedback counters, after the feedback rows are written.

    Increments first (one executemany), then the tasks counted again from their rows:
    ``LIVE_SINCE_CUTOFF`` walks the index from the new cut-off, so it reads only the
    feedback after it; ``LIVE_FEEDBACK`` (a task the batch created) reads the task's feedback once.
    """
    counts = next((c.counts for c in changes if c.counts), None)
    if counts is None:
        return
    if counts.added:
        rows = [{"task": task_id, "n": n, "since": since} for task_id, (n, since) in counts.added.items()]
        conn.execute(_ADD_COUNTS, rows)
    tasks = t.tasks
    among = _among_array if conn.dialect.name == "postgresql" else _among_json
    for ids in _chunks(counts.recount_since - counts.recount_all):
        recount_since = tasks.update().where(among(tasks.c.id, ids))
        conn.execute(recount_since.values(live_since_cutoff=t.LIVE_SINCE_CUTOFF))
    for ids in _chunks(counts.recount_all):
        recount = {"live_feedback": t.LIVE_FEEDBACK, "live_since_cutoff": t.LIVE_SINCE_CUTOFF}
        conn.execute(tasks.update().where(among(tasks.c.id, ids)).values(recount))


_ADD_COUNTS = (
    t.tasks.update()
    .where(t.tasks.c.id == bindparam("task"))
    .values(
        live_feedback=t.tasks.c.live_feedback + bindparam("n"),
        live_since_cutoff=t.tasks.c.live_since_cutoff + bindparam("since"),
    )
)


@functools.cache
def _upsert(dialect: str, table: Table) -> Any:
    """INSERT … ON CONFLICT (primary key) DO UPDATE every other column, on SQLite and PostgreSQL.

    Built once per table: rebuilt every batch, it showed in the projector's profile.
    """
    stmt = dialect_insert(dialect, table)
    keys = [c.name for c in table.primary_key.columns]
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=keys, set_=updates)


@functools.cache
def _insert_new(dialect: str, table: Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING: the first row with a key wins."""
    return dialect_insert(dialect, table).on_conflict_do_nothing()


def check(conn: Connection, changes: Sequence[TableChanges]) -> None:
    """Make the database bind ``checks`` into columns of the same types, then forget them.

    A value that a later event of the batch overwrote was still written when events were
    applied one by one, so a value the database refuses must fail the batch here too.
    The rows go to temporary tables without keys (one per connection, made on first use)
    inside a savepoint that is rolled back, so they never hold a row.
    """
    shadows = [SHADOWS[c.table.name] for c in changes]
    for shadow in shadows:
        conn.execute(CreateTable(shadow, if_not_exists=True))
    savepoint = conn.begin_nested()
    try:
        for shadow, change in zip(shadows, changes, strict=True):
            bulk.executemany(conn, SHADOW_INSERTS[shadow.name], change.checks)
    finally:
        savepoint.rollback()


def _shadow(table: Table, metadata: MetaData) -> Table:
    """A table with ``table``'s column types, but no key, constraint or NOT NULL."""
    columns = [Column(c.name, c.type, nullable=True) for c in table.columns]
    return Table(f"check_{table.name}", metadata, *columns, prefixes=["TEMPORARY"])


_SHADOW_METADATA = MetaData()
SHADOWS = {table.name: _shadow(table, _SHADOW_METADATA) for table in t.metadata.sorted_tables}
#: One INSERT per shadow table, built once, so ``bulk`` compiles each only once per dialect.
SHADOW_INSERTS = {shadow.name: shadow.insert() for shadow in SHADOWS.values()}


__all__ = ["check", "count_feedback", "load", "write"]
