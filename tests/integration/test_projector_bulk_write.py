"""The projector's bulk write stores what SQLAlchemy's executemany stored, byte for byte, and fails as it did.

``shared.readmodel.bulk`` binds rows through the DBAPI cursor with SQLAlchemy's own
conversions; ``kaizen replay`` compares read models and the API serves their bytes, so
any difference would show. Each table's every column type (text, numbers, booleans,
timestamps, JSON) is written both ways on SQLite and PostgreSQL, through the projector's
own transactions, and read back raw. The column lists come from the tables, so a column
added later is covered too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Connection, DateTime, Float, Integer, String, Table, Text
from sqlalchemy.exc import DBAPIError

from services.projector import adapters
from shared.readmodel import bulk
from shared.readmodel import tables as t
from shared.readmodel.db import create_schema, make_engine, refused_data
from shared.readmodel.transactions import Transactions

TABLES = [table for table in t.metadata.sorted_tables if table is not t.projector_offsets]
Write = Callable[[Connection, Any, list[dict[str, Any]]], None]


def _through_sqlalchemy(conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    conn.execute(statement, rows)


def _through_bulk(conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    assert bulk._prepared(conn.dialect, statement, tuple(rows[0])) is not None, "left to SQLAlchemy"
    if conn.dialect.name == "postgresql":
        assert bulk._arrays(conn.dialect, statement, tuple(rows[0])) is not None, "not as arrays"
    bulk.executemany(conn, statement, rows)


def _value(column: Any, i: int, variant: int) -> Any:
    """A value of ``column``'s type; ``i`` keeps keys and unique columns distinct."""
    kind = column.type
    if column.nullable and not column.primary_key and (i + variant) % 4 == 3:
        return None
    if isinstance(kind, Boolean):
        return (i + variant) % 2 == 0
    if isinstance(kind, Integer):
        return [0, -1, 2**31 - 1 - i, 7][(i + variant) % 4] if not column.primary_key else i
    if isinstance(kind, Float):
        return [0.1, -0.0, 1e300, 3.0][(i + variant) % 4]
    if isinstance(kind, DateTime):
        base = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC) + timedelta(days=i, seconds=variant)
        zones = [base, base.replace(microsecond=0), base.astimezone(timezone(timedelta(hours=2)))]
        return zones[(i + variant) % 3]
    if isinstance(kind, JSON):
        return [{"é": [1, 2.5, None, True], "k": f"v{i}"}, [], {"n": {"m": "✓"}}, "text"][(i + variant) % 4]
    if isinstance(kind, (String, Text)):
        text = [f"row {i} ✓ é", f"'quoted' {i}", f"{i}", f"v{variant}-{i}"][(i + variant) % 4]
        length = getattr(kind, "length", None)
        return text[:length] if length else text
    raise AssertionError(f"no value for {column.type!r}")


def _rows(table: Table, count: int, variant: int) -> list[dict[str, Any]]:
    return [{c.name: _value(c, i, variant) for c in table.columns} for i in range(count)]


def _keyed(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose primary key is their index, so a second variant hits the ON CONFLICT branch."""
    keys = [c.name for c in table.primary_key.columns]
    for i, row in enumerate(rows):
        for name in keys:
            row[name] = i if isinstance(table.c[name].type, Integer) else f"key-{i}"
    return rows


def _stored(conn: Connection, table: Table) -> list[Any]:
    """The rows as the database holds them: raw SQLite values, PostgreSQL's text of each row."""
    order = ", ".join(c.name for c in table.primary_key.columns)
    if conn.dialect.name == "postgresql":
        return list(conn.exec_driver_sql(f"SELECT {table.name}::text FROM {table.name} ORDER BY {order}"))  # noqa: S608
    columns = ", ".join(f"{c.name}, typeof({c.name})" for c in table.columns)
    return list(conn.exec_driver_sql(f"SELECT {columns} FROM {table.name} ORDER BY {order}"))  # noqa: S608


async def _written(db_url: str, write: Write) -> dict[str, list[Any]]:
    """Every table after an insert of one variant of rows and an upsert of another, through ``write``."""
    engine = make_engine(db_url)
    await create_schema(engine)
    transactions = Transactions(engine)

    def work(conn: Connection) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for table in TABLES:
            conn.exec_driver_sql(f"DELETE FROM {table.name}")  # noqa: S608
            write(conn, adapters._insert_new(conn.dialect.name, table), _keyed(table, _rows(table, 6, 0)))
            write(conn, adapters._insert_new(conn.dialect.name, table), _keyed(table, _rows(table, 6, 2)))
            write(conn, adapters._upsert(conn.dialect.name, table), _keyed(table, _rows(table, 4, 1)))
            found[table.name] = _stored(conn, table)
        return found

    try:
        return await transactions.run(work)
    finally:
        await transactions.dispose()
        await engine.dispose()


async def test_every_table_stores_the_same_bytes_through_bulk_as_through_sqlalchemy(db_url: str) -> None:
    by_sqlalchemy = await _written(db_url, _through_sqlalchemy)
    by_bulk = await _written(db_url, _through_bulk)
    assert set(by_bulk) == {table.name for table in TABLES}
    for name, rows in by_sqlalchemy.items():
        assert rows, name
        assert by_bulk[name] == rows, name


async def test_rows_repeating_a_key_are_stored_as_executemany_stored_them(db_url: str) -> None:
    """The last of two upserts of a key wins, the first of two inserts does: in one call, as one by one."""
    stored = []
    for write in (_through_sqlalchemy, _through_bulk):
        engine = make_engine(db_url)
        await create_schema(engine)
        transactions = Transactions(engine)

        def work(conn: Connection, write: Write = write) -> list[Any]:
            rows = _keyed(t.jobs, _rows(t.jobs, 3, 0)) + _keyed(t.jobs, _rows(t.jobs, 2, 1))
            write(conn, adapters._insert_new(conn.dialect.name, t.jobs), rows)
            write(conn, adapters._upsert(conn.dialect.name, t.jobs), list(reversed(rows)))
            return _stored(conn, t.jobs)

        try:
            stored.append(await transactions.run(work))
        finally:
            await transactions.dispose()
            await engine.dispose()
    assert stored[0] == stored[1]
    assert len(stored[0]) == 3


async def _refusal(db_url: str, write: Write, rows: Sequence[dict[str, Any]]) -> str | None:
    engine = make_engine(db_url)
    await create_schema(engine)
    transactions = Transactions(engine)
    try:
        await transactions.run(
            lambda conn: write(conn, adapters._upsert(conn.dialect.name, t.jobs), list(rows))
        )
    except DBAPIError as exc:
        return refused_data(exc)
    finally:
        await transactions.dispose()
        await engine.dispose()
    raise AssertionError("the database accepted the rows")


@pytest.mark.parametrize(
    ("column", "value"),
    [("status", None), ("feedback_count", 2**70), ("error_message", "a\x00b")],
    ids=["null-in-not-null", "integer-beyond-64-bits", "nul-character"],
)
async def test_refused_rows_raise_what_sqlalchemys_executemany_raised(
    db_url: str, column: str, value: Any
) -> None:
    rows = _rows(t.jobs, 3, 0)
    rows[1][column] = value
    if value == "a\x00b" and db_url.startswith("sqlite"):
        pytest.skip("SQLite stores a NUL character; only PostgreSQL refuses it")
    expected = await _refusal(db_url, _through_sqlalchemy, rows)
    assert expected is not None and expected.startswith("the database refused the data")
    assert await _refusal(db_url, _through_bulk, rows) == expected


async def test_rows_without_every_column_get_sqlalchemys_defaults(db_url: str) -> None:
    """A row that leaves out a column with a Python-side default is left to SQLAlchemy, which fills it in."""
    engine = make_engine(db_url)
    await create_schema(engine)
    transactions = Transactions(engine)
    row = {c.name: _value(c, 0, 0) for c in t.tasks.columns if c.default is None}
    defaulted = [c.name for c in t.tasks.columns if c.default is not None]
    assert defaulted, "tasks has columns with Python-side defaults"

    def work(conn: Connection) -> list[Any]:
        bulk.executemany(
            conn, adapters._upsert(conn.dialect.name, t.tasks), [dict(row), dict(row, id="other")]
        )
        return list(conn.execute(t.tasks.select().order_by(t.tasks.c.id)))

    try:
        stored = await transactions.run(work)
    finally:
        await transactions.dispose()
        await engine.dispose()
    assert len(stored) == 2
    for found in stored:
        for name in defaulted:
            assert found._mapping[name] == t.tasks.c[name].default.arg  # type: ignore[union-attr]
