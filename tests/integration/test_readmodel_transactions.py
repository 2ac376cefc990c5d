"""A projector batch is one transaction done in one call, on SQLite and PostgreSQL.

On a SQLite file the whole transaction (load, fold, write, checks, offsets, commit) runs
in one trip to one worker thread, through a pysqlite twin of the aiosqlite engine, instead
of one trip per statement. Atomicity must not change: work that raises leaves nothing,
and a transaction held over several calls (the bisection's) commits all of them or none.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select

from services.projector.projection import Projection
from shared.events import codec
from shared.events.envelope import Envelope
from shared.kafka.consumer import Delivery
from shared.readmodel import tables as t
from shared.readmodel.db import create_schema, make_engine
from shared.readmodel.transactions import Transactions
from tests.support import events as ev

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOPIC = "transactions-test.tasks"


def _deliveries(envelopes: list[Envelope]) -> list[Delivery]:
    from aiokafka import ConsumerRecord

    found = []
    for offset, envelope in enumerate(envelopes):
        value = codec.encode(envelope)
        record = ConsumerRecord(TOPIC, 0, offset, 0, 0, envelope.key, value, None, 0, len(value), [])
        found.append(Delivery(TOPIC, 0, offset, codec.decode(value), record))
    return found


def _insert_offset(partition: int) -> Callable[[Connection], None]:
    def work(conn: Connection) -> None:
        conn.execute(t.projector_offsets.insert(), {"topic": TOPIC, "partition": partition, "next_offset": 1})

    return work


def _fail(conn: Connection) -> None:
    raise RuntimeError("the work failed after its statements")


async def _stored_partitions(transactions: Transactions) -> list[int]:
    return await transactions.run(
        lambda conn: sorted(conn.execute(select(t.projector_offsets.c.partition)).scalars())
    )


async def test_a_batch_on_a_sqlite_file_is_one_trip_to_one_worker_thread(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'readmodel.db'}")
    projection = Projection(engine, None, "transactions-test")
    try:
        await create_schema(engine)
        task = ev.task_created()
        assert task.task_id is not None
        batch = _deliveries([task, *ev.feedback(task.task_id, 20), *ev.job_lifecycle(task.task_id)])
        twin = projection.transactions.twin
        assert twin is not None
        threads: list[str] = []
        through_aiosqlite: list[str] = []
        event.listen(
            twin, "before_cursor_execute", lambda *_: threads.append(threading.current_thread().name)
        )
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: through_aiosqlite.append(a[2]))
        executor = projection.transactions._thread
        assert executor is not None
        submit = executor.submit
        trips: list[object] = []

        def counted(*args: Any, **kwargs: Any) -> Any:
            trips.append(args[0])
            return submit(*args, **kwargs)

        executor.submit = counted  # type: ignore[method-assign]

        await projection.apply(batch)

        assert len(trips) == 1
        assert len(threads) >= 4  # loads, one write per table, the offsets
        assert {name.split("_")[0] for name in threads} == {"readmodel-transactions"}
        assert through_aiosqlite == []
        async with engine.connect() as conn:
            feedback = (await conn.execute(select(func.count()).select_from(t.feedback))).scalar_one()
            offsets = (await conn.execute(select(t.projector_offsets.c.next_offset))).scalars().all()
        assert feedback == 20  # committed, and visible through the other engine
        assert offsets == [len(batch)]
    finally:
        await projection.close()
        await engine.dispose()


async def test_work_that_raises_leaves_none_of_its_statements_behind(db_url: str) -> None:
    engine = make_engine(db_url)
    transactions = Transactions(engine)
    try:
        await create_schema(engine)

        def half_done(conn: Connection) -> None:
            _insert_offset(0)(conn)
            _fail(conn)

        with pytest.raises(RuntimeError):
            await transactions.run(half_done)
        await transactions.run(_insert_offset(1))

        assert await _stored_partitions(transactions) == [1]
    finally:
        await transactions.dispose()
        await engine.dispose()


async def test_a_held_transaction_commits_all_its_calls_together_or_none(db_url: str) -> None:
    engine = make_engine(db_url)
    transactions = Transactions(engine)
    try:
        await create_schema(engine)
        with pytest.raises(RuntimeError):
            async with transactions.held() as held:
                await held.run(_insert_offset(0))
                await held.run(_fail)
        async with transactions.held() as held:
            await held.run(_insert_offset(1))
            await held.run(_insert_offset(2))

        assert await _stored_partitions(transactions) == [1, 2]
    finally:
        await transactions.dispose()
        await engine.dispose()


async def test_a_savepoint_released_first_in_a_held_transaction_is_undone_with_it(db_url: str) -> None:
    # The bisection's first attempt opens a savepoint before any other statement. Through
    # sqlite3's own transaction handling that savepoint was the outermost one, and its
    # release committed the part at once: a crash before the offsets kept the rows without them.
    engine = make_engine(db_url)
    transactions = Transactions(engine)
    try:
        await create_schema(engine)

        def part(conn: Connection) -> None:
            with conn.begin_nested():
                _insert_offset(0)(conn)

        with pytest.raises(RuntimeError):
            async with transactions.held() as held:
                await held.run(part)
                await held.run(_fail)

        assert await _stored_partitions(transactions) == []
    finally:
        await transactions.dispose()
        await engine.dispose()


async def test_the_work_sees_the_callers_context_variables(db_url: str) -> None:
    engine = make_engine(db_url)
    transactions = Transactions(engine)
    batch_id: contextvars.ContextVar[str] = contextvars.ContextVar("batch_id")
    batch_id.set("batch-7")
    try:
        assert await transactions.run(lambda _conn: batch_id.get()) == "batch-7"
    finally:
        await transactions.dispose()
        await engine.dispose()
