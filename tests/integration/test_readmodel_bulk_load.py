"""A rebuild fills a fresh SQLite file in bulk, then leaves it synced and in WAL mode.

While it loads, the file's rollback journal stays in memory and nothing is synced (a
crash throws the fresh file away), but a transaction that fails, and a savepoint the
bisection rolls back, must still leave nothing. At the end the file must be in WAL mode,
which every other engine expects.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, text

from shared.readmodel import tables as t
from shared.readmodel.db import create_schema, finish_bulk_load, make_engine
from shared.readmodel.transactions import Transactions

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOPIC = "bulk-load-test.tasks"


def _offset(partition: int) -> dict[str, object]:
    return {"topic": TOPIC, "partition": partition, "next_offset": 1}


def _journal(conn: Connection) -> tuple[str, int]:
    mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
    return mode, synchronous


def _insert_then_fail(conn: Connection) -> None:
    conn.execute(t.projector_offsets.insert(), _offset(1))
    raise RuntimeError("the batch failed after its statements")


def _savepoint_rolled_back(conn: Connection) -> None:
    conn.execute(t.projector_offsets.insert(), _offset(2))
    savepoint = conn.begin_nested()
    conn.execute(t.projector_offsets.insert(), _offset(3))
    savepoint.rollback()


def _partitions(conn: Connection) -> list[int]:
    return sorted(conn.execute(select(t.projector_offsets.c.partition)).scalars())


async def test_a_bulk_load_rolls_back_exactly_and_ends_synced_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    engine = make_engine(url, bulk_load=True)
    transactions = Transactions(engine)
    try:
        await create_schema(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_journal) == ("memory", 0)
        assert await transactions.run(_journal) == ("memory", 0)  # the worker thread's twin too

        with pytest.raises(RuntimeError, match="batch failed"):
            await transactions.run(_insert_then_fail)
        await transactions.run(_savepoint_rolled_back)
        assert await transactions.run(_partitions) == [2]
    finally:
        await transactions.dispose()
        await engine.dispose()

    finish_bulk_load(url)

    with sqlite3.connect(tmp_path / "fresh.db") as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    served = make_engine(url)
    try:
        async with served.connect() as conn:
            assert await conn.run_sync(_journal) == ("wal", 1)
            assert (await conn.execute(text("SELECT count(*) FROM projector_offsets"))).scalar_one() == 1
    finally:
        await served.dispose()


def test_finishing_a_bulk_load_off_a_sqlite_file_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    finish_bulk_load("postgresql+asyncpg://kaizen@localhost/kaizen")  # no file named after the database
    finish_bulk_load("sqlite+aiosqlite:///:memory:")  # switching memory to WAL would raise
    assert list(tmp_path.iterdir()) == []
