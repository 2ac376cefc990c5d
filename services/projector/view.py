"""The read model's rows as one batch sees them: loaded for the batch's keys, changed in memory.

Pure: no I/O. ``adapters.load`` fills a :class:`View` with the rows a batch's events read
(:class:`Wanted`), the handlers fold the events into it, and ``adapters.write`` writes
:meth:`View.changes` with one statement per table.

Folding a batch must give what folding its events one by one gave, refusals included:
an event whose statement the database refuses (SQLSTATE 22/23) is dead-lettered. So
every value an event's own statement would have bound is remembered, including values a
later event of the batch overwrites, or that went to a statement that changed no row.
The final write binds most of them; the rest are :attr:`TableChanges.checks`, which the
database is made to accept too (``adapters.check``). A value it refuses fails the batch,
and the projection's recovery finds the event that bound it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from shared.readmodel import tables as t

Row = dict[str, Any]
Key = tuple[Any, ...]


class RefusedValue(Exception):
    """A value the database would refuse, found before asking it (NULL in a NOT NULL column)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class TableChanges:
    """What one table's write must do."""

    table: Table
    #: Final rows: insert each, or replace the row with its key.
    upserts: list[Row] = field(default_factory=list)
    #: Insert unless the key exists already (the first attempt in the batch wins).
    inserts: list[Row] = field(default_factory=list)
    #: Values bound on the way that the rows above do not carry; never stored, only checked.
    checks: list[Row] = field(default_factory=list)
    #: The tasks table only: its feedback counters' changes, applied after every row is written.
    counts: FeedbackCounts | None = None


class Rows:
    """One table's rows by key: as loaded for the batch, then as the batch changed them."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.key_columns = [c.name for c in table.primary_key.columns]
        self.blank: Row = dict.fromkeys(table.columns.keys())
        self.rows: dict[Key, Row] = {}
        self.changed: dict[Key, None] = {}  # an ordered set: rows written in first-change order
        self.bound: list[tuple[Key, Row]] = []

    def key(self, values: Row) -> Key:
        if len(self.key_columns) == 1:
            return (values[self.key_columns[0]],)
        return tuple(values[c] for c in self.key_columns)

    def seed(self, rows: Iterable[Row]) -> None:
        """Rows as the database holds them before the batch."""
        for row in rows:
            self.rows[self.key(row)] = row

    def get(self, *key: Any) -> Row | None:
        return self.rows.get(key)

    def insert(self, values: Row) -> None:
        """A new row; columns not given are NULL, as an INSERT without them makes them."""
        key = self.key(values)
        self.rows[key] = self.blank | values
        self.changed[key] = None
        self.bound.append((key, values))

    def insert_new(self, values: Row) -> bool:
        """INSERT unless the key exists; returns whether a row was inserted."""
        key = self.key(values)
        if key in self.rows:
            self.bind(key, values)
            return False
        self.insert(values)
        return True

    def update(self, key: Key, **values: Any) -> bool:
        """UPDATE the row with ``key`` if it exists; returns whether it did."""
        row = self.rows.get(key)
        self.bound.append((key, values))
        if row is None:
            return False
        # A new dict, so a row a handler read earlier stays the snapshot it read.
        self.rows[key] = row | values
        self.changed[key] = None
        return True

    def put(self, values: Row) -> None:
        """INSERT … ON CONFLICT DO UPDATE with every column: the last one wins."""
        key = self.key(values)
        self.rows[key] = self.blank | values
        self.changed[key] = None
        self.bound.append((key, values))

    def bind(self, key: Key, values: Row) -> None:
        """Values a statement bound that changed no row (its row is missing or the rule said no)."""
        self.bound.append((key, values))

    def changes(self) -> TableChanges:
        final = [self.rows[k] for k in self.changed]
        return TableChanges(self.table, upserts=final, checks=_checks(self.table, self.bound, self._final))

    def _final(self, key: Key) -> Row | None:
        return self.rows[key] if key in self.changed else None


class Appends:
    """A table the batch only inserts into, unless the key exists; only whether a key exists is read."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.key_columns = [c.name for c in table.primary_key.columns]
        self.blank: Row = dict.fromkeys(table.columns.keys())
        self.first: dict[Key, Row] = {}
        self.bound: list[tuple[Key, Row]] = []
        #: Keys the table held before the batch (of those loaded: see ``Wanted.feedback_ids``).
        self.existing: set[Key] = set()

    def seed_keys(self, keys: Iterable[Key]) -> None:
        """Keys the database holds before the batch."""
        self.existing.update(keys)

    def is_new(self, *key: Any) -> bool:
        """Whether adding a row with ``key`` would insert it (no earlier row, stored or in the batch)."""
        return key not in self.existing and key not in self.first

    def add(self, values: Row) -> None:
        key = self.key(values)
        if key not in self.first:
            # The row written binds every value given, so only a later add's values need checking.
            self.first[key] = self.blank | values
            return
        self.bound.append((key, values))

    def key(self, values: Row) -> Key:
        if len(self.key_columns) == 1:
            return (values[self.key_columns[0]],)
        return tuple(values[c] for c in self.key_columns)

    def changes(self) -> TableChanges:
        inserts = list(self.first.values())
        return TableChanges(
            self.table, inserts=inserts, checks=_checks(self.table, self.bound, self.first.get)
        )


def _checks(table: Table, bound: list[tuple[Key, Row]], final: Any) -> list[Row]:
    """The bound values the final rows do not carry, packed into as few rows as possible."""
    columns: dict[str, list[Any]] = {}
    seen: set[tuple[str, Any]] = set()
    for key, values in bound:
        written = final(key)
        for name, value in values.items():
            if written is not None and written.get(name) == value:
                continue
            if value is None and not table.c[name].nullable:
                raise RefusedValue(f"the database refused the data: NULL in {table.name}.{name}")
            try:
                if (name, value) in seen:
                    continue
                seen.add((name, value))
            except TypeError:  # a dict or list: checked every time
                pass
            columns.setdefault(name, []).append(value)
    if not columns:
        return []
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in itertools.zip_longest(*columns.values())]


@dataclass
class FeedbackCounts:
    """How a batch changes its tasks' ``live_feedback`` and ``live_since_cutoff``.

    Counted as the feedback rows are added, so that showing a task never counts its rows.
    Increments cover the tasks whose cut-off stayed where it was; a moved cut-off or a task
    created by the batch (its feedback may have come first) is counted again from the rows,
    after they are written (``adapters.count_feedback``). The tasks' rows in the view keep
    the counters they were loaded with: the writes add to what the database holds.
    """

    #: Task id → [new live feedback, of which after the task's cut-off].
    added: dict[str, list[int]] = field(default_factory=dict)
    #: Tasks whose cut-off moved: ``live_since_cutoff`` is counted again.
    recount_since: set[str] = field(default_factory=set)
    #: Tasks the batch created: both counters are counted again.
    recount_all: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.added or self.recount_since or self.recount_all)

    def add(self, task_id: str, *, after_cutoff: bool) -> None:
        counts = self.added.setdefault(task_id, [0, 0])
        counts[0] += 1
        counts[1] += after_cutoff


@dataclass
class Wanted:
    """The keys a batch's events read: what ``adapters.load`` fetches before folding."""

    key_ids: set[str] = field(default_factory=set)
    key_hashes: set[str] = field(default_factory=set)
    all_keys: bool = False
    task_ids: set[str] = field(default_factory=set)
    #: Live feedback ids: whether the feedback table holds each already (a redelivery counts once).
    feedback_ids: set[str] = field(default_factory=set)
    job_ids: set[str] = field(default_factory=set)
    event_ids: set[str] = field(default_factory=set)
    version_ids: set[str] = field(default_factory=set)
    #: Tasks whose active versions an activation archives.
    active_versions_of: set[str] = field(default_factory=set)
    #: Tasks that get a new version: their highest version number so far.
    numbers_of: set[str] = field(default_factory=set)
    #: Webhook subscriptions a deletion reads.
    webhook_ids: set[str] = field(default_factory=set)


class View:
    """The rows a batch reads and writes, per table."""

    def __init__(self) -> None:
        self.api_keys = Rows(t.api_keys)
        #: Whether ``api_keys`` holds every key (a bootstrap or last-admin rule counts them).
        self.all_keys = False
        self.tasks = Rows(t.tasks)
        self.feedback = Appends(t.feedback)
        self.feedback_counts = FeedbackCounts()
        self.jobs = Rows(t.jobs)
        self.job_events = Rows(t.job_events)
        self.prompt_versions = Rows(t.prompt_versions)
        #: The highest version number per task (of the tasks in ``Wanted.numbers_of``).
        self.last_version: dict[str, int] = {}
        self.request_outcomes = Appends(t.request_outcomes)
        self.heartbeats = Rows(t.heartbeats)
        self.service_loops = Rows(t.service_loops)
        self.webhook_subscriptions = Rows(t.webhook_subscriptions)
        self.webhook_deliveries = Appends(t.webhook_deliveries)

    def tables(self) -> Iterator[Rows | Appends]:
        yield from (self.api_keys, self.tasks, self.feedback, self.jobs, self.job_events)
        yield from (self.prompt_versions, self.request_outcomes, self.heartbeats, self.service_loops)
        yield from (self.webhook_subscriptions, self.webhook_deliveries)

    def changes(self) -> list[TableChanges]:
        """Every table's writes; raises :class:`RefusedValue` for a value no database stores."""
        found = []
        for rows in self.tables():
            change = rows.changes()
            if rows is self.tasks and self.feedback_counts:
                change.counts = self.feedback_counts
            if change.upserts or change.inserts or change.checks or change.counts:
                found.append(change)
        return found
