"""Where a batch-fold step runs: the two implementations of ``batch_fold.FoldTransactions``.

- :class:`InWorkerThread` — a synchronous step (``step(Connection, part)``) through
  :class:`shared.readmodel.transactions.Transactions`: on a SQLite file the whole batch is one trip
  to a worker thread (the projector). No effects outside the database: it cannot await
  an append from inside that trip.
- :class:`OnAsyncConnection` — an async step (``await step(AsyncConnection, part)``) on
  an ``AsyncEngine`` (the optimizer and the publisher, whose handlers await their
  statements); the step returns its effects.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Generic, Never

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.kafka.batch_fold import BeforeCommit, E, Following, Savepoints
from shared.kafka.consumer import Delivery
from shared.kafka.offsets import TableOffsets
from shared.readmodel.transactions import Transactions

# -- a synchronous step, one worker-thread trip per batch ---------------------------------


class InWorkerThread:
    """:class:`FoldTransactions` for a synchronous step, through ``Transactions`` (``shared.readmodel``)."""

    def __init__(
        self,
        transactions: Transactions,
        step: Callable[[Connection, Sequence[Delivery]], None],
        offsets: TableOffsets,
    ) -> None:
        self.transactions = transactions
        self.step = step
        self.offsets = offsets

    async def whole(
        self, batch: Sequence[Delivery], following: Following, before_commit: BeforeCommit[Never]
    ) -> None:
        def work(conn: Connection) -> None:
            self.step(conn, batch)
            self.offsets.store(conn, following)

        await self.transactions.run(work)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[Savepoints[Never]]:
        async with self.transactions.held() as held:
            yield _ThreadSavepoints(held.run, self.step, self.offsets)


class _ThreadSavepoints:
    def __init__(
        self,
        run: Callable[[Callable[[Connection], None]], Awaitable[None]],
        step: Callable[[Connection, Sequence[Delivery]], None],
        offsets: TableOffsets,
    ) -> None:
        self.run, self.step, self.offsets = run, step, offsets

    async def attempt(self, part: Sequence[Delivery]) -> list[Never]:
        def in_savepoint(conn: Connection) -> None:
            with conn.begin_nested():
                self.step(conn, part)

        await self.run(in_savepoint)
        return []

    async def store(self, following: Following) -> None:
        await self.run(lambda conn: self.offsets.store(conn, following))


# -- an async step on an AsyncConnection ---------------------------------------------------


class OnAsyncConnection(Generic[E]):
    """:class:`FoldTransactions` for an async step on ``engine``'s connections; the step returns its effects.

    Build ``engine`` with ``shared.kafka.offsets.local_state_engine`` (or ``make_engine``):
    they raise a value sqlite3 cannot bind as a ``DataError``, so such a record is refused
    data here, not a crash.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        step: Callable[[AsyncConnection, Sequence[Delivery]], Awaitable[list[E]]],
        offsets: TableOffsets,
    ) -> None:
        self.engine = engine
        self.step = step
        self.offsets = offsets

    async def whole(
        self, batch: Sequence[Delivery], following: Following, before_commit: BeforeCommit[E]
    ) -> None:
        async with self.engine.begin() as conn:
            effects = await self.step(conn, batch)
            await self.offsets.save_all(conn, following)
            await before_commit(effects)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[Savepoints[E]]:
        async with self.engine.begin() as conn:
            yield _AsyncSavepoints(conn, self.step, self.offsets)


class _AsyncSavepoints(Generic[E]):
    def __init__(
        self,
        conn: AsyncConnection,
        step: Callable[[AsyncConnection, Sequence[Delivery]], Awaitable[list[E]]],
        offsets: TableOffsets,
    ) -> None:
        self.conn, self.step, self.offsets = conn, step, offsets

    async def attempt(self, part: Sequence[Delivery]) -> list[E]:
        async with self.conn.begin_nested():
            return await self.step(self.conn, part)

    async def store(self, following: Following) -> None:
        await self.offsets.save_all(self.conn, following)
