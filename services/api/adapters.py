"""The API's only side effects: appending events, then waiting until the projector shows them.

Plain writes wait until the projector's stored offset for the partition passes the
event's offset. Decided writes (create task, bootstrap key, optimize, activate, retry
PR) wait for the row the projector writes in ``request_outcomes`` under the request id.
One poller serves every waiting request, so a burst of writes costs one small query
per tick rather than one per request.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api import SERVICE_NAME
from services.api.reads import Reads
from shared.events import codec
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.kafka.producer import MAX_EVENT_BYTES, EventLog, EventTooLarge, LogUnavailable, Position
from shared.readmodel.tables import projector_offsets, request_outcomes

if TYPE_CHECKING:
    from services.api.keyfeed import KeyFeed
    from services.api.probe import BrokerState

log = logging.getLogger(__name__)
#: How often a waiting write reads the projector's offsets. A write waits half of it on
#: average after the projector applied it: at 5 ms, POSTs at c=16 answered 937-942 req/s,
#: at 2 ms 1,083-1,099 and at 1 ms no better (1,081-1,111), with the same CPU per request
#: (bench/README.md). The reads run only while some write waits.
POLL_SECONDS = 0.002
T = TypeVar("T")


class KafkaKnownDown(LogUnavailable):
    """The broker is known to be unreachable, so the write was refused without trying."""


class NotYetVisible(TimeoutError):
    """The event is durable in the log, but the projector did not show it in time."""


@dataclass(frozen=True)
class Outcome:
    """How the log's consumers decided a request."""

    accepted: bool
    entity_id: str | None
    reason: str | None
    detail: str | None


class ProjectionWatcher:
    """Resolves waiters as the projector's offsets and request outcomes appear.

    Waiters are futures in one heap per partition, ordered by offset, so a tick wakes
    exactly the writes the projector passed. A tick's queries (each seeing the latest
    commit) make one trip to :class:`Reads`' thread on a SQLite file (through aiosqlite a
    tick was eight thread wake-ups, 200 times a second); elsewhere the poller holds one
    autocommit connection while anyone waits (no pool checkout, no transaction per tick).
    It stops when nobody waits.
    """

    def __init__(
        self, engine: AsyncEngine, interval: float = POLL_SECONDS, reads: Reads | None = None
    ) -> None:
        """``reads``: the API's read runner, shared with its routes (else one of its own)."""
        self._engine = engine
        self._reads = reads or Reads(engine)
        self._owns_reads = reads is None
        self._interval = interval
        self._offsets: dict[tuple[str, int], list[tuple[int, int, asyncio.Future[None]]]] = {}
        self._waiting = 0  # live offset waiters (timed-out ones stay in the heaps until passed)
        self._order = itertools.count()  # ties in a heap never compare futures
        self._applied: dict[tuple[str, int], int] = {}  # the projector's next offsets, as last read
        self._outcomes: dict[str, asyncio.Future[Outcome]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def applied(self, positions: list[Position], timeout: float) -> None:  # noqa: ASYNC109
        """Return once every position is applied; raise :class:`NotYetVisible` after ``timeout``."""
        waiters = [self._waiter(p) for p in positions if not self._passed(p)]
        if not waiters:
            return
        self._waiting += len(waiters)
        try:
            await self._wait(asyncio.gather(*waiters), timeout)
        finally:
            self._waiting -= len(waiters)

    def _passed(self, position: Position) -> bool:
        return self._applied.get((position.topic, position.partition), 0) > position.offset

    def _waiter(self, position: Position) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heap = self._offsets.setdefault((position.topic, position.partition), [])
        heapq.heappush(heap, (position.offset, next(self._order), future))
        return future

    async def outcome(self, request_id: str, timeout: float) -> Outcome:  # noqa: ASYNC109
        """The decision on ``request_id``; raise :class:`NotYetVisible` after ``timeout``."""
        future = self._outcomes[request_id] = asyncio.get_running_loop().create_future()
        try:
            return await self._wait(future, timeout)
        finally:
            self._outcomes.pop(request_id, None)

    async def _wait(self, awaitable: Awaitable[T], timeout: float) -> T:  # noqa: ASYNC109
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="api-projection-watcher")
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError as exc:
            raise NotYetVisible("the projector did not apply the write in time") from exc

    def _anyone_waiting(self) -> bool:
        return self._waiting > 0 or bool(self._outcomes)

    async def _poll(self) -> None:
        while self._anyone_waiting():
            try:
                if self._reads.one_trip:
                    while self._anyone_waiting():
                        self._apply(*await self._reads.run(self._snapshot()))
                        await asyncio.sleep(self._interval)
                    continue
                async with self._engine.connect() as conn:
                    live = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    while self._anyone_waiting():
                        self._apply(*await live.run_sync(self._snapshot()))
                        await asyncio.sleep(self._interval)
            except (SQLAlchemyError, OSError):
                # The read model may be briefly unavailable; waiters time out if it stays so.
                log.warning("polling the read model failed", exc_info=True)
                await asyncio.sleep(self._interval)
        self._offsets.clear()

    def _snapshot(self) -> Callable[[Connection], tuple[list[Any] | None, list[Any]]]:
        """One tick's reads, decided on the loop, run where ``Reads`` runs them."""
        offsets, requests = bool(self._waiting), list(self._outcomes)

        def read(conn: Connection) -> tuple[list[Any] | None, list[Any]]:
            applied = list(conn.execute(select(projector_offsets)).all()) if offsets else None
            query = select(request_outcomes).where(request_outcomes.c.request_id.in_(requests))
            return applied, list(conn.execute(query).all()) if requests else []

        return read

    def _apply(self, applied: list[Any] | None, outcomes: list[Any]) -> None:
        if applied is not None:
            self._applied = {(r.topic, r.partition): r.next_offset for r in applied}
            for partition, heap in self._offsets.items():
                self._wake(heap, self._applied.get(partition, 0))
        for row in outcomes:
            waiter = self._outcomes.get(row.request_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(Outcome(row.outcome == "accepted", row.entity_id, row.reason, row.detail))

    @staticmethod
    def _wake(heap: list[tuple[int, int, asyncio.Future[None]]], next_offset: int) -> None:
        while heap and (heap[0][0] < next_offset or heap[0][2].done()):
            _, _, future = heapq.heappop(heap)
            if not future.done():
                future.set_result(None)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._owns_reads:
            await self._reads.dispose()


class Writer:
    """Appends a request's events (correlated by its request id) and waits until they are visible.

    Visible means: the projector applied them, and, for key events, this process's key
    feed folded them too, so the key a request created or revoked is honoured or refused
    here as soon as the request returns.

    While ``broker`` knows Kafka is unreachable, appends are refused at once (a 503 in
    milliseconds rather than after the producer's timeout); a write that times out
    teaches ``broker`` the same, and the background probe tells it when Kafka is back.
    """

    def __init__(
        self,
        events: EventLog,
        watcher: ProjectionWatcher,
        timeout: float,
        keys: KeyFeed | None = None,
        broker: BrokerState | None = None,
    ) -> None:
        self.events = events
        self.watcher = watcher
        self.timeout = timeout
        self.keys = keys
        self.broker = broker

    async def append(self, request_id: str, events: list[Event]) -> list[Position]:
        """Append and wait for Kafka's acknowledgement; raises ``LogUnavailable``."""
        return await self._append(self.wrap(request_id, events))

    @staticmethod
    def wrap(request_id: str, events: list[Event]) -> list[Envelope]:
        """The envelopes ``events`` travel in, correlated by the request's id."""
        return [Envelope.wrap(e, source=SERVICE_NAME, correlation_id=request_id) for e in events]

    async def _append(self, envelopes: list[Envelope]) -> list[Position]:
        # ``append_all`` refuses an oversized event (``EventTooLarge``, a 413) before it sends
        # anything, encoding each envelope once. Only a write that will not reach it checks
        # here, so a body that can never fit is a 413 even while Kafka is down, not a 503.
        if self.broker is None:
            return await self.events.append_all(envelopes)
        if self.broker.known_down:
            for envelope in envelopes:
                if (size := len(codec.encode(envelope))) > MAX_EVENT_BYTES:
                    raise EventTooLarge(envelope.type, size)
            raise KafkaKnownDown("Kafka is known to be unreachable; the write was not attempted")
        try:
            positions = await self.events.append_all(envelopes)
        except LogUnavailable as exc:
            self.broker.failed(str(exc), decisive=True)
            raise
        self.broker.answered()
        return positions

    async def write(self, request_id: str, *events: Event) -> list[Envelope]:
        """A plain write: append, then wait until the read model shows it.

        Returns the envelopes as appended: their ``id`` and ``time`` are what the projector
        stores (a feedback row's ``created_at`` is its envelope's ``time``), so a route can
        answer from them without reading its own write back.
        """
        envelopes, _ = await self.write_placed(request_id, *events)
        return envelopes

    async def write_placed(self, request_id: str, *events: Event) -> tuple[list[Envelope], list[Position]]:
        """:meth:`write`, also returning where each event sits in the log.

        A read model row stores its record's offset: a keyed batch tells its own rows
        from a racing attempt's by it (``idempotency.overwritten``).
        """
        envelopes = self.wrap(request_id, list(events))
        positions = await self._append(envelopes)
        deadline = asyncio.get_running_loop().time() + self.timeout
        await self.watcher.applied(positions, self.timeout)
        await self._keys_folded(positions, deadline)
        return envelopes, positions

    async def decide(self, request_id: str, event: Event, timeout: float | None = None) -> Outcome:  # noqa: ASYNC109
        """A decided write: append, then wait for the consumers' decision on the request."""
        positions = await self.append(request_id, [event])
        deadline = asyncio.get_running_loop().time() + (timeout or self.timeout)
        outcome = await self.watcher.outcome(request_id, timeout or self.timeout)
        await self._keys_folded(positions, deadline)
        return outcome

    async def _keys_folded(self, positions: list[Position], deadline: float) -> None:
        if self.keys is not None:
            await self.keys.reached(positions, max(0.0, deadline - asyncio.get_running_loop().time()))
