"""A request's read-model queries in one trip off the event loop.

Through aiosqlite every statement is four trips to the connection's thread and back
(cursor, execute, fetch, close), and every connection's return to the pool a fifth; each
trip is two thread wake-ups. Profiled under ``wrk -c16`` on a 2-core machine that other
processes share, those wake-ups, not SQLite's work, set the hot routes' latency
(bench/README.md, ``bench.api_ratio``).

On a SQLite file :meth:`Reads.run` therefore runs a request's whole read, a synchronous
``work(conn)``, in one transaction (one snapshot) and one trip to one thread of its own,
on a read-only (``query_only``) twin of the read model's engine: the projector's batch
transactions use the same machinery (``shared.readmodel.db.Transactions``). That thread
takes queued reads one after the other without sleeping, so a burst costs few wake-ups.
On PostgreSQL (asyncpg: no threads) and on in-memory SQLite, which no second engine can
share, ``work`` runs on the async engine's connection through ``run_sync``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.readmodel.db import Transactions


class Reads(Transactions):
    """Runs synchronous read-model work, in one trip off the event loop where that is possible."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, read_only=True, thread_name="api-reads")
