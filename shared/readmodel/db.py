"""Engines for the read model: SQLite (default) or PostgreSQL, chosen by URL.

Also which database errors are the data's fault (:func:`refused_data`): a consumer
dead-letters the record that caused one and moves on, and stops on any other error.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateColumn

from shared.private_files import ensure_private_file
from shared.readmodel.tables import metadata

#: SQLSTATE classes of errors the data causes: 22 data exception, 23 integrity violation.
DATA_SQLSTATE_CLASSES = ("22", "23")
# sqlite3 raises these plain Python errors while binding a value it cannot store (an
# integer beyond 64 bits, a lone surrogate): SQLite's equivalents of SQLSTATE 22003/22021.
_SQLITE_DATA_ERRORS = (OverflowError, UnicodeEncodeError)


def make_engine(url: str, pool_size: int | None = None) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so readers never block the projector.

    ``hide_parameters``: an error's text never carries the values of the statement (user
    data, key hashes), so it can be logged and dead-lettered. ``pool_size``: connections
    kept open (and as many again opened for a burst), for a server's concurrency.
    """
    pool = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": pool_size}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            ensure_private_file(Path(path))
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "handle_error", _sqlite_data_error)
        return engine
    pool = {"pool_size": 10, "max_overflow": 10} | pool
    return create_async_engine(url, pool_pre_ping=True, hide_parameters=True, **pool)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_data_error(context: ExceptionContext) -> DataError | None:
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
    """``ALTER TABLE … ADD COLUMN`` for every column of ``metadata`` an existing table lacks."""
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
    return added


async def drop_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)


__all__ = ["Engine", "create_schema", "drop_schema", "make_engine", "refused_data"]
