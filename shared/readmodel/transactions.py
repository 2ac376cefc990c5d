"""Synchronous read-model work in one transaction, with as few trips off the event loop as possible.

Through aiosqlite every statement (and the begin and the commit) is a trip to its thread
and back; a batch of a dozen statements waits for the loop a dozen times. On a SQLite
file, :class:`Transactions` instead does the whole transaction in one trip to a worker
thread of its own, through the engine's synchronous twin (:func:`shared.readmodel.db.sqlite_twin`).
The projector's folds and the API's reads both go through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.readmodel.db import on_sqlite_file, sqlite_twin

T = TypeVar("T")


class Transactions:
    """Runs synchronous database work in one transaction, with as few trips off the event loop as possible.

    On a SQLite file, ``run`` does the whole transaction (begin, ``work``, commit) in one
    trip to one worker thread of its own, through :func:`~shared.readmodel.db.sqlite_twin`.
    Elsewhere (PostgreSQL, in-memory SQLite) ``work`` runs on the async engine's connection
    through ``run_sync``: the same statements, each awaited by the driver as before.

    The worker thread is the only one that touches the twin's connections, so a transaction
    held open over several calls (:meth:`held`) stays on the thread that began it.
    """

    def __init__(
        self, engine: AsyncEngine, *, read_only: bool = False, thread_name: str = "readmodel-transactions"
    ) -> None:
        self.engine = engine
        self.read_only = read_only
        self._thread_name = thread_name
        self._twin: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._direct = not on_sqlite_file(engine)

    @property
    def one_trip(self) -> bool:
        """Whether :meth:`run` makes one trip to a thread (a SQLite file) rather than driver calls."""
        return not self._direct

    @property
    def twin(self) -> Engine | None:
        """The pysqlite engine the worker thread uses (made on first use); ``None`` off SQLite files."""
        if self._twin is None and not self._direct:
            self._twin = sqlite_twin(self.engine, read_only=self.read_only)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
        return self._twin

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in a transaction that commits when it returns and rolls back when it raises."""
        twin = self.twin
        if twin is None:
            async with self.engine.begin() as conn:
                return await conn.run_sync(work)
        return await self._hop(_in_transaction, twin, work)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[Held]:
        """One transaction over several ``Held.run`` calls, with awaits between them; committed at exit."""
        twin = self.twin
        if twin is None:
            async with self.engine.begin() as conn:
                yield Held(conn.run_sync)
            return
        connection = await self._hop(twin.connect)
        try:
            transaction = await self._hop(connection.begin)
            try:
                yield Held(lambda work: self._hop(work, connection))
            except BaseException:
                await self._hop(transaction.rollback)
                raise
            await self._hop(transaction.commit)
        finally:
            await self._hop(connection.close)

    async def dispose(self) -> None:
        """Close the worker thread's connections and the thread (after the work queued before)."""
        if self._thread is None:
            return
        if self._twin is not None:
            await self._hop(self._twin.dispose)
        self._thread.shutdown(wait=False)
        self._thread, self._twin = None, None

    async def _hop(self, fn: Callable[..., T], *args: Any) -> T:
        # The caller's context (log ids, trace span) goes along to the worker thread.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._thread, context.run, fn, *args)


class Held:
    """A transaction held open by :meth:`Transactions.held`: each ``run`` adds to it."""

    def __init__(self, runner: Callable[[Callable[[Connection], Any]], Any]) -> None:
        self._runner = runner

    async def run(self, work: Callable[[Connection], T]) -> T:
        result: T = await self._runner(work)
        return result


def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:
        return work(conn)


__all__ = ["Held", "Transactions"]
