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
share, a trip is one checkout of the async engine's pool and the same works, each in its
own transaction, through ``run_sync``. Up to :data:`SERVER_TRIPS` trips run at once on
PostgreSQL (a server answers several connections at a time); elsewhere one at a time.
Shared queries halved the API's CPU per request for the job list on PostgreSQL as they
had on SQLite (bench/README.md).
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
Outcome = tuple[Any, Exception | None]  # a work's result, or the error it raised
Works = list[
    tuple[Callable[[Connection], Any], contextvars.Context]
]  # a trip's, with their callers' contexts

#: Trips at once on PostgreSQL (each a pool checkout); under load more works share each.
SERVER_TRIPS = 4


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
        self._trips: set[asyncio.Task[None]] = set()
        # One connection at a time to a SQLite file or an in-memory database.
        self._most_trips = SERVER_TRIPS if engine.url.get_backend_name() == "postgresql" else 1

    async def run(self, work: Callable[[Connection], T], *, share: Hashable | None = None) -> T:
        """``work(conn)`` in a read transaction of its own, begun after this call.

        ``share``: a key naming what ``work`` reads (``("task", id)``); calls with the same
        key waiting for the same trip run ``work`` once and all get its result, which they
        must not change.
        """
        loop = asyncio.get_running_loop()
        key = object() if share is None else share
        queued = self._queue.get(key)
        if queued is None:
            queued = self._queue[key] = _Queued(work, contextvars.copy_context())
        waiter: asyncio.Future[T] = loop.create_future()
        queued.waiters.append(waiter)
        if len(self._trips) < self._most_trips:
            self._trips.add(loop.create_task(self._run_trips(), name="api-reads-trips"))
        return await waiter

    async def _trip(self, works: Works) -> list[Outcome]:
        twin = self.twin
        if twin is not None:
            return await self._hop(_run_each, twin, works)
        async with self.engine.connect() as conn:
            return await conn.run_sync(_run_each_on, works)

    async def _run_trips(self) -> None:
        try:
            await self._trips_until_none_queued()
        finally:
            # Gone from the set in the same step that finds the queue empty: a caller
            # queueing right after must start a trip, not count on this one.
            self._trips.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _trips_until_none_queued(self) -> None:
        while self._queue:
            batch, self._queue = list(self._queue.values()), {}
            try:
                outcomes = await self._trip([(q.work, q.context) for q in batch])
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

    async def dispose(self) -> None:
        trips = list(self._trips)
        for trip in trips:
            trip.cancel()
        await asyncio.gather(*trips, return_exceptions=True)
        await super().dispose()


def _fail(waiter: asyncio.Future[Any], exc: BaseException) -> None:
    if waiter.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        waiter.cancel()
    else:
        waiter.set_exception(exc)


def _run_each(engine: Engine, works: Works) -> list[Outcome]:
    """:func:`_run_each_on` one connection of ``engine`` (in the reads thread)."""
    with engine.connect() as conn:
        return _run_each_on(conn, works)


def _run_each_on(conn: Connection, works: Works) -> list[Outcome]:
    """Each work in its own transaction on ``conn``; a work's error is its own."""
    outcomes: list[Outcome] = []
    for work, context in works:
        try:
            outcomes.append((context.run(_in_transaction, conn, work), None))
        except Exception as exc:  # handed to the work's callers, raised there
            outcomes.append((None, exc))
    return outcomes


def _in_transaction(conn: Connection, work: Callable[[Connection], T]) -> T:
    with conn.begin():
        return work(conn)
