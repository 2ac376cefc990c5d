"""Engines for the read model: SQLite (default) or PostgreSQL, chosen by URL.

Also which database errors are the data's fault (:func:`refused_data`): a consumer
dead-letters the record that caused one and moves on, and stops on any other error.
The schema is made here too (:func:`create_schema`); running work on these engines in one
trip off the event loop is :mod:`shared.readmodel.transactions`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Table, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateColumn

from shared import tracing
from shared.private_files import ensure_private_file
from shared.readmodel.tables import metadata

#: SQLSTATE classes of errors the data causes: 22 data exception, 23 integrity violation.
DATA_SQLSTATE_CLASSES = ("22", "23")
# sqlite3 raises these plain Python errors while binding a value it cannot store (an
# integer beyond 64 bits, a lone surrogate): SQLite's equivalents of SQLSTATE 22003/22021.
_SQLITE_DATA_ERRORS = (OverflowError, UnicodeEncodeError)


#: An engine's execution option: its SQLite connections load a fresh file in bulk (:func:`make_engine`).
BULK_LOAD = "kaizen_bulk_load"


def make_engine(url: str, pool_size: int | None = None, *, bulk_load: bool = False) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so readers never block the projector.

    ``hide_parameters``: an error's text never carries the values of the statement (user
    data, key hashes), so it can be logged and dead-lettered. ``pool_size``: connections
    kept open (and as many again opened for a burst), for a server's concurrency.

    ``bulk_load``: a SQLite file that nobody reads yet is being filled (a rebuild into a
    fresh file): its rollback journal stays in memory and nothing is synced, because a
    crash midway throws the file away anyway. :func:`finish_bulk_load` then syncs it and
    turns WAL on, before anyone else opens it. Other databases ignore it.
    """
    pool = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": pool_size}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            ensure_private_file(Path(path))
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            hide_parameters=True,
            execution_options={BULK_LOAD: bulk_load},
            **pool,
        )
        event.listen(engine.sync_engine, "connect", _bulk_load_pragmas if bulk_load else _sqlite_pragmas)
        event.listen(engine.sync_engine, "handle_error", sqlite_data_error)
        return engine
    pool = {"pool_size": 10, "max_overflow": 10} | pool
    return create_async_engine(url, pool_pre_ping=True, hide_parameters=True, **pool)


def sqlite_twin(engine: AsyncEngine, *, read_only: bool = False) -> Engine | None:
    """A synchronous pysqlite engine on the same SQLite file as ``engine``; ``None`` for other databases.

    ``read_only``: its connections are ``query_only`` (the API's reads never write).

    Same pragmas (WAL, busy timeout; or the bulk load's), the same data-error mapping and hidden parameters as
    :func:`make_engine`'s, so a statement behaves and fails the same through either. An
    in-memory database has no file to share, so it gets no twin.

    Unlike sqlite3's own handling (which begins a transaction only at the first write), the
    twin begins each transaction with ``BEGIN`` (SQLAlchemy's documented pysqlite recipe):
    a batch's loads then read the snapshot its writes change, and a savepoint opened first
    is nested in the transaction instead of being it, so releasing it commits nothing yet.
    """
    url = engine.url
    if not on_sqlite_file(engine):
        return None
    bulk_load = bool(engine.get_execution_options().get(BULK_LOAD))
    twin = create_engine(
        url.set(drivername="sqlite+pysqlite"),
        connect_args={"timeout": 30},
        hide_parameters=True,
        execution_options={BULK_LOAD: bulk_load},
    )
    event.listen(twin, "connect", _bulk_load_pragmas if bulk_load else _sqlite_pragmas)
    event.listen(twin, "connect", _transactions_by_sqlalchemy)
    event.listen(twin, "begin", _explicit_begin)
    event.listen(twin, "handle_error", sqlite_data_error)
    if read_only:
        event.listen(twin, "connect", _query_only)
    tracing.instrument_engine(twin)  # its statements are spans like the async engine's (when on)
    return twin


def _query_only(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.execute("PRAGMA query_only=ON")


def _transactions_by_sqlalchemy(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.isolation_level = None  # sqlite3 emits no BEGIN or COMMIT of its own


def _explicit_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def on_sqlite_file(engine: AsyncEngine) -> bool:
    """Whether ``engine`` is on a SQLite file, which a synchronous twin can share."""
    url = engine.url
    in_memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    return url.get_backend_name() == "sqlite" and not in_memory


def _pragmas(journal_mode: str, synchronous: str) -> Callable[[object, object], None]:
    """A ``connect`` listener giving each SQLite connection these modes and a busy timeout."""

    def set_pragmas(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute(f"PRAGMA journal_mode={journal_mode}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return set_pragmas


_sqlite_pragmas = _pragmas("WAL", "NORMAL")
# A bulk load's journal is MEMORY, not OFF: a batch that fails is still rolled back (and
# bisected) exactly. Written once instead of twice (WAL, then the file) and never synced, a
# rebuild of 100,000 records took about 10 % less CPU and 1.17x less time (bench/README.md).
_bulk_load_pragmas = _pragmas("MEMORY", "OFF")


def finish_bulk_load(url: str) -> None:
    """Sync a file :func:`make_engine` (``bulk_load``) filled, and turn WAL on, as every engine expects.

    Call it once every connection of the loading engines is closed (none of them may go
    on writing unsynced). Nothing to do off SQLite files.
    """
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or path in (None, "", ":memory:"):
        return
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"{path} stayed in journal mode {mode!r} instead of WAL")
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def sqlite_data_error(context: ExceptionContext) -> DataError | None:
    """Raise a value sqlite3 cannot bind as the ``DataError`` PostgreSQL would give."""
    original = context.original_exception
    if context.sqlalchemy_exception is not None or not isinstance(original, _SQLITE_DATA_ERRORS):
        return None
    return DataError(context.statement, None, original, hide_parameters=True)


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a PostgreSQL error (asyncpg or psycopg); ``None`` on SQLite."""
    for attr in ("sqlstate", "pgcode"):
        code = getattr(exc.orig, attr, None)
        if isinstance(code, str) and code:
            return code
    return None


def refused_data(exc: BaseException) -> str | None:
    """Why the database refused a statement's data, or ``None`` when the fault lies elsewhere.

    The reason names the SQLSTATE, the driver's error class and the statement's target,
    never the error's message: drivers quote the offending value in it.
    """
    if not isinstance(exc, DBAPIError):
        return None
    code = sqlstate(exc)
    if code is not None and code[:2] not in DATA_SQLSTATE_CLASSES:
        return None
    if code is None and not isinstance(exc, (DataError, IntegrityError)):
        return None
    where = " ".join((exc.statement or "").split()[:3])
    kind = f"SQLSTATE {code} ({_root(exc)})" if code else _root(exc)
    return f"the database refused the data: {kind}" + (f" in {where}" if where else "")


def _root(exc: DBAPIError) -> str:
    """The innermost cause's class: the driver's own error (``CharacterNotInRepertoireError``)."""
    seen: BaseException = exc.orig if exc.orig is not None else exc
    while seen.__cause__ is not None:
        seen = seen.__cause__
    return type(seen).__name__


async def create_schema(engine: AsyncEngine) -> None:
    """Create what is missing: tables, and columns added to a table since it was created.

    Columns are only ever added with a server default (or nullable), so a read model made by
    an earlier version keeps working; its old rows get the value an old event decodes to.
    """
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(add_missing_columns)


def add_missing_columns(conn: Connection) -> list[str]:
    """``ALTER TABLE … ADD COLUMN`` for every column of ``metadata`` an existing table lacks.

    A column whose ``info["backfill"]`` holds an expression (a scalar subquery correlated to
    its table, such as ``tasks.live_feedback``) is then set to it on every row, in the same
    transaction: a figure derived from other tables must not read 0 on the rows made before it.
    """
    inspector = inspect(conn)
    added: list[str] = []
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable and column.server_default is None:
                raise RuntimeError(
                    f"the read model's table {table.name} lacks column {column.name}, which has no default; "
                    "rebuild it from the log with `kaizen replay`"
                )
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
            added.append(f"{table.name}.{column.name}")
        _backfill(conn, table, [c for c in table.columns if f"{table.name}.{c.name}" in added])
    return added


def _backfill(conn: Connection, table: Table, added: list[Column[Any]]) -> None:
    """Fill the just-added columns that say how (``info["backfill"]``), with one UPDATE."""
    values = {c.name: c.info["backfill"] for c in added if "backfill" in c.info}
    if values:
        conn.execute(table.update().values(values))


async def drop_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)


__all__ = [
    "Engine",
    "create_schema",
    "drop_schema",
    "finish_bulk_load",
    "make_engine",
    "on_sqlite_file",
    "refused_data",
    "sqlite_data_error",
    "sqlite_twin",
]
