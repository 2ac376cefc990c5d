"""A request's read-model queries in one trip off the event loop, shared with the requests beside it.

Through aiosqlite every statement is four trips to the connection's thread and back
(cursor, execute, fetch, close), and every connection's return to the pool a fifth; each
trip is two thread wake-ups. Profiled under ``wrk -c16`` on a 2-core machine that other
processes share, those wake-ups, not SQLite's work, set the hot routes' latency
(bench/README.md, ``bench.api_ratio``).

On a SQLite file :meth:`Reads.run` therefore runs a request's whole read, a synchronous
``work(conn)``, in one transaction (one snapshot) on a read-only (``query_only``) twin of
the read model's engine, in a thread of its own: the projector's batch transactions use
the same machinery (``shared.readmodel.transactions.Transactions``).

Under load the hand-off itself was the cost: a trip per request (an executor item, a
future, a wake-up of the event loop, the GIL changing hands twice), and a pool checkout
and return per transaction. So the works that queue up while a trip is running go
together in the next one: one hand-off, one connection, each work still in a transaction
of its own, begun after the work was queued, so a request sees every write acknowledged
before it asked (read your writes). Works given the same ``share`` key in one trip run
once and every caller gets the result: concurrent requests for the same row cost one
query.

On PostgreSQL (asyncpg: no threads) and on in-memory SQLite, which no second engine can
share, ``work`` runs on the async engine's connection through ``run_sync``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.readmodel.transactions import Transactions

T = TypeVar("T")


@dataclass
class _Queued:
    """One distinct work of a trip and everyone waiting for its result."""

    work: Callable[[Connection], Any]
    context: contextvars.Context  # the first caller's: its log ids and trace span go along
    waiters: list[asyncio.Future[Any]] = field(default_factory=list)


class Reads(Transactions):
    """Runs synchronous read-model work off the event loop, many requests' works to a trip."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, read_only=True, thread_name="api-reads")
        self._queue: dict[Hashable, _Queued] = {}
        self._trips: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[Connection], T], *, share: Hashable | None = None) -> T:
        """``work(conn)`` in a read transaction of its own, begun after this call.

        ``share``: a key naming what ``work`` reads (``("task", id)``); calls with the same
        key waiting for the same trip run ``work`` once and all get its result, which they
        must not change. (Off a SQLite file there are no trips: each call runs its own.)
        """
        if self.twin is None:
            return await super().run(work)
        loop = asyncio.get_running_loop()
        key = object() if share is None else share
        queued = self._queue.get(key)
        if queued is None:
            queued = self._queue[key] = _Queued(work, contextvars.copy_context())
        waiter: asyncio.Future[T] = loop.create_future()
        queued.waiters.append(waiter)
        if self._trips is None:
            self._trips = loop.create_task(self._run_trips(), name="api-reads-trips")
        return await waiter

    async def _run_trips(self) -> None:
        try:
            while self._queue:
                batch, self._queue = list(self._queue.values()), {}
                twin = self.twin
                assert twin is not None
                try:
                    outcomes = await self._hop(_run_each, twin, [(q.work, q.context) for q in batch])
                except Exception as exc:  # no connection: every work of this trip failed with it
                    outcomes = [(None, exc)] * len(batch)
                except BaseException as exc:  # cancelled (the process stops): so is every waiting work
                    for queued in [*batch, *self._queue.values()]:
                        for waiter in queued.waiters:
                            _fail(waiter, exc)
                    self._queue = {}
                    raise
                for queued, (value, error) in zip(batch, outcomes, strict=True):
                    for waiter in queued.waiters:
                        if error is None:
                            if not waiter.done():  # done: its caller was cancelled
                                waiter.set_result(value)
                        else:
                            _fail(waiter, error)
        finally:
            self._trips = None

    async def dispose(self) -> None:
        if self._trips is not None:
            self._trips.cancel()
            await asyncio.gather(self._trips, return_exceptions=True)
        await super().dispose()


def _fail(waiter: asyncio.Future[Any], exc: BaseException) -> None:
    if waiter.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        waiter.cancel()
    else:
        waiter.set_exception(exc)


def _run_each(
    engine: Engine, works: list[tuple[Callable[[Connection], Any], contextvars.Context]]
) -> list[tuple[Any, Exception | None]]:
    """Each work in its own transaction on one connection; a work's error is its own."""
    outcomes: list[tuple[Any, Exception | None]] = []
    with engine.connect() as conn:
        for work, context in works:
            try:
                outcomes.append((context.run(_in_transaction, conn, work), None))
            except Exception as exc:  # handed to the work's callers, raised there
                outcomes.append((None, exc))
    return outcomes


def _in_transaction(conn: Connection, work: Callable[[Connection], T]) -> T:
    with conn.begin():
        return work(conn)
