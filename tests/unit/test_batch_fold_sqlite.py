"""The shared batch-fold loop over real SQLite files, with both kinds of fold step.

``async``: an async step on the aiosqlite engine the optimizer and the publisher keep their
state in (``local_state_engine``). ``thread``: a synchronous step through the read model's
``Transactions`` (one worker-thread trip per batch, the projector's). The step inserts one
row per record; the database refuses a number beyond 64 bits and a repeated key, as it
would refuse a real event's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.kafka.batch_fold import BatchFold, FoldTransactions
from shared.kafka.consumer import Delivery
from shared.kafka.fold_transactions import InWorkerThread, OnAsyncConnection
from shared.kafka.offsets import TableOffsets, local_state_engine, offsets_table
from shared.kafka.producer import EventLog
from shared.readmodel.db import make_engine
from shared.readmodel.transactions import Transactions
from tests.unit.test_batch_fold import TOPIC, DeadLetters, deliveries

HUGE = 2**70  # beyond SQLite's 64-bit integers: sqlite3 cannot bind it

metadata = MetaData()
offsets = offsets_table(metadata)
folded = Table(
    "folded",
    metadata,
    Column("offset", Integer, primary_key=True, autoincrement=False),
    Column("key", String(16), nullable=False, unique=True),
    Column("value", Integer, nullable=False),
)


class Broken(Exception):
    """Not the data's fault: the loop must stop."""


def row(d: Delivery, values: dict[int, Any], keys: dict[int, str]) -> dict[str, Any]:
    if values.get(d.offset) == "broken":
        raise Broken("the disk is full")
    return {"offset": d.offset, "key": keys.get(d.offset, f"k{d.offset}"), "value": values.get(d.offset, 1)}


class Folding:
    """One kind of step over a fresh SQLite file, with what it was asked to insert."""

    def __init__(self, kind: str, engine: AsyncEngine, transactions: Transactions | None) -> None:
        self.kind, self.engine, self.transactions = kind, engine, transactions
        self.values: dict[int, Any] = {}
        self.keys: dict[int, str] = {}
        self.table_offsets = TableOffsets(engine, offsets)
        self.emitted: list[list[int]] = []

    def fold(self, dead: DeadLetters) -> BatchFold[Any]:
        chosen: FoldTransactions[Any]
        if self.transactions is not None:
            chosen = InWorkerThread(self.transactions, self._sync_step, self.table_offsets)
        else:
            chosen = OnAsyncConnection(self.engine, self._async_step, self.table_offsets)
        return BatchFold(
            chosen,
            consumer="tests",
            what="sqlite fold",
            group="t.tests",
            dead_letters=cast(EventLog, dead),
            emit=self._emitted,
        )

    async def _emitted(self, effects: list[int]) -> None:
        self.emitted.append(effects)

    def _sync_step(self, conn: Connection, part: Sequence[Delivery]) -> None:
        for d in part:
            conn.execute(insert(folded).values(**row(d, self.values, self.keys)))

    async def _async_step(self, conn: AsyncConnection, part: Sequence[Delivery]) -> list[int]:
        for d in part:
            await conn.execute(insert(folded).values(**row(d, self.values, self.keys)))
        return [d.offset for d in part]

    async def stored(self) -> tuple[list[int], dict[Any, int]]:
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(select(folded.c.offset).order_by(folded.c.offset))).scalars())
            stored = {(r.topic, r.partition): r.next_offset for r in await conn.execute(select(offsets))}
        return rows, stored


@pytest.fixture(params=["async", "thread"])
async def folding(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Folding]:
    path = tmp_path / "state.db"
    if request.param == "async":
        engine, transactions = local_state_engine(path), None
    else:
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
        transactions = Transactions(engine)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    found = Folding(request.param, engine, transactions)
    try:
        yield found
    finally:
        if transactions is not None:
            await transactions.dispose()
        await engine.dispose()


async def test_values_sqlite_refuses_are_dead_lettered_and_the_rest_is_stored_with_the_offsets(
    folding: Folding,
) -> None:
    folding.values = {2: HUGE}
    folding.keys = {7: "k4"}  # the key record 4 stored: a uniqueness violation
    dead = DeadLetters()
    await folding.fold(dead).apply(deliveries(10))
    assert await folding.stored() == ([0, 1, 3, 4, 5, 6, 8, 9], {(TOPIC, 0): 10})
    assert dead.offsets() == [2, 7]
    reasons = [headers["kaizen.reason"].decode() for _topic, headers in dead.sent]
    assert all(r.startswith("sqlite fold failed: the database refused the data") for r in reasons), reasons
    assert "INSERT INTO folded" in reasons[0] and str(HUGE) not in reasons[0]
    if folding.kind == "async":
        assert folding.emitted == [[0, 1, 3, 4, 5, 6, 8, 9]]  # the kept parts' effects, once


async def test_an_error_during_a_bisection_leaves_nothing_committed_not_even_the_parts_kept_before_it(
    folding: Folding,
) -> None:
    # Part [0] is kept (its savepoint released) before record 6 breaks the fold.
    folding.values = {1: HUGE, 6: "broken"}
    with pytest.raises(Broken):
        await folding.fold(DeadLetters()).apply(deliveries(8))
    assert await folding.stored() == ([], {})
    assert folding.emitted == []


async def test_a_batch_folded_after_a_refused_one_starts_from_the_stored_rows(folding: Folding) -> None:
    folding.values = {3: HUGE}
    fold = folding.fold(DeadLetters())
    batch = deliveries(10)
    await fold.apply(batch[:5])
    folding.keys = {8: "k0"}  # repeats a key the first batch stored
    await fold.apply(batch[5:])
    assert await folding.stored() == ([0, 1, 2, 4, 5, 6, 7, 9], {(TOPIC, 0): 10})
