"""Many rows through one compiled statement, without SQLAlchemy's per-row work.

``conn.execute(insert, rows)`` builds every row's parameters in Python: a dict per row
from the compiled statement (``construct_params``), then each value through its type's
bind processor, then a tuple in the order of the placeholders; in a rebuild's profile
that was more than the database's own work on the rows. Here the
statement is compiled once per dialect and set of columns, and each row becomes its
tuple in one pass, through the *same* bind processors SQLAlchemy would apply — so the
database receives the same values and stores the same bytes
(``tests/integration/test_projector_bulk_write.py`` compares them, on SQLite and
PostgreSQL). The rows still go through ``Connection.exec_driver_sql``: its events
(tracing) and its error handling (``DBAPIError``, the ``handle_error`` hooks that
:func:`shared.readmodel.db.refused_data` relies on) are unchanged. On PostgreSQL (asyncpg)
a batch of rows with distinct keys goes as one statement over arrays (:func:`_arrays`).

Whatever this cannot reproduce exactly goes to ``conn.execute`` as before: rows whose
columns differ (SQLAlchemy would fill in Python-side defaults), a statement whose
placeholders are not all row values, a named paramstyle, an expanding parameter.
"""

from __future__ import annotations

import operator
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import Insert

Row = dict[str, Any]


@dataclass(frozen=True)
class Prepared:
    """A statement compiled for one dialect and one set of row keys, with each placeholder's conversion."""

    sql: str
    #: Row keys in placeholder order.
    keys: tuple[str, ...]
    #: The bind processor of each placeholder (``None``: the value goes as it is).
    processors: tuple[Callable[[Any], Any] | None, ...]

    def parameters(self, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
        """Each row as the tuple the DBAPI cursor binds."""
        return list(zip(*self.columns(rows), strict=True))

    def columns(self, rows: Sequence[Row]) -> list[Sequence[Any]]:
        """Each placeholder's values over ``rows``, converted: what :meth:`parameters` transposes.

        Column by column, each conversion is one ``map`` over its values: the interpreter
        runs no loop of its own per row and value (a rebuild binds a few values per record).
        """
        keys = self.keys
        if not rows:
            return [[] for _ in keys]
        if len(keys) == 1:
            columns: list[Sequence[Any]] = [[row[keys[0]] for row in rows]]
        else:
            columns = list(zip(*map(operator.itemgetter(*keys), rows), strict=True))
        steps = zip(columns, self.processors, strict=True)
        return [values if p is None else list(map(p, values)) for values, p in steps]


#: Per dialect (an engine's), per statement and row keys: the prepared form, or ``None`` when
#: the statement cannot be bound row by row here.
_PREPARED: weakref.WeakKeyDictionary[Dialect, dict[tuple[Insert, tuple[str, ...]], Prepared | None]] = (
    weakref.WeakKeyDictionary()
)
#: Entries per dialect before the cache starts again: statements built afresh per call
#: (not the intended use) must not make it grow for ever.
_MAX_PREPARED = 256


def executemany(conn: Connection, statement: Insert, rows: Sequence[Row]) -> None:
    """``conn.execute(statement, rows)``, with the same values bound, at a fraction of the CPU.

    ``statement`` should be long-lived (built once per table): its compiled form is cached.
    """
    if not rows:
        return
    keys = tuple(rows[0])
    prepared = _prepared(conn.dialect, statement, keys)
    if prepared is None or not _same_keys(rows, keys):
        conn.execute(statement, list(rows))
        return
    columns = prepared.columns(rows)
    arrays = _arrays(conn.dialect, statement, keys)
    if arrays is not None and len(rows) > 1 and _distinct_keys(statement, rows):
        conn.exec_driver_sql(arrays, tuple(map(list, columns)))
        return
    conn.exec_driver_sql(prepared.sql, list(zip(*columns, strict=True)))  # type: ignore[arg-type]


def _distinct_keys(statement: Insert, rows: Sequence[Row]) -> bool:
    """Whether no two rows share a primary key: one statement may not upsert a row twice."""
    columns = [c.key for c in statement.table.primary_key.columns]  # type: ignore[attr-defined]
    if not columns:  # a table without a key (the projector's check tables): nothing to conflict
        return True
    if len(columns) == 1:
        (name,) = columns
        return len({row[name] for row in rows}) == len(rows)
    return len({tuple(row[c] for c in columns) for row in rows}) == len(rows)


#: ``VALUES ($1::VARCHAR, $2::TIMESTAMP WITH TIME ZONE, …)`` as SQLAlchemy renders it for asyncpg.
_VALUES = re.compile(r"VALUES \((?P<params>(?:\$\d+::[A-Z ]+(?:, )?)+)\)")
_PARAM = re.compile(r"\$(?P<n>\d+)::(?P<type>[A-Z ]+)")


def _arrays(dialect: Dialect, statement: Insert, keys: tuple[str, ...]) -> str | None:
    """On PostgreSQL, the statement with one array per column: ``SELECT * FROM unnest($1::VARCHAR[], …)``.

    One statement for the whole batch instead of one execution per row (what the issue
    asks of a rebuild on PostgreSQL): the server parses, plans and runs it once. Each array
    holds the values the row-by-row form binds, cast to the same types, so the same
    bytes are stored; a value refused fails the statement with the same SQLSTATE, and the
    projection's bisection finds its record as before. ``None`` off PostgreSQL's asyncpg.
    """
    if dialect.name != "postgresql" or dialect.driver != "asyncpg":
        return None
    prepared = _prepared(dialect, statement, keys)
    if prepared is None:
        return None
    found = _VALUES.search(prepared.sql)
    if found is None:
        return None
    params = [m.groupdict() for m in _PARAM.finditer(found["params"])]
    if [int(p["n"]) for p in params] != list(range(1, len(keys) + 1)):
        return None
    arrays = ", ".join(f"${p['n']}::{p['type']}[]" for p in params)
    # SQLAlchemy's own statement, its VALUES replaced by its own placeholders and type names.
    unnest = f"SELECT * FROM unnest({arrays})"  # noqa: S608
    return prepared.sql[: found.start()] + unnest + prepared.sql[found.end() :]


def _same_keys(rows: Sequence[Row], keys: tuple[str, ...]) -> bool:
    first = rows[0].keys()
    return all(row.keys() == first for row in rows) and len(first) == len(keys)


def _prepared(dialect: Dialect, statement: Insert, keys: tuple[str, ...]) -> Prepared | None:
    cache = _PREPARED.setdefault(dialect, {})
    key = (statement, keys)
    if key not in cache:
        if len(cache) >= _MAX_PREPARED:
            cache.clear()
        cache[key] = _compile(dialect, statement, keys)
    return cache[key]


def _compile(dialect: Dialect, statement: Insert, keys: tuple[str, ...]) -> Prepared | None:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    if not compiled.positional or compiled.positiontup is None:
        return None
    if compiled.literal_execute_params or compiled.post_compile_params:
        return None
    if compiled.insert_prefetch or compiled.update_prefetch:  # Python-side defaults to compute
        return None
    names = list(compiled.positiontup)
    binds = {name: compiled.binds[name] for name in names}
    order = tuple(binds[name].key for name in names)
    if sorted(order) != sorted(keys) or not all(b.required and b.callable is None for b in binds.values()):
        return None  # a placeholder that is not a row value (a literal, a default): leave it to SQLAlchemy
    found = [compiled._bind_processors.get(name) for name in names]  # what SQLAlchemy applies to each
    processors = [p for p in found if p is None or callable(p)]  # not a tuple type's list of them
    if len(processors) != len(found):
        return None
    return Prepared(compiled.string, order, tuple(cast(list[Callable[[Any], Any] | None], processors)))


__all__ = ["Prepared", "executemany"]
