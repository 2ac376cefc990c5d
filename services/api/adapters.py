"""The API's only side effects: appending events, then waiting until the projector shows them.

Plain writes wait until the projector's stored offset for the partition passes the
event's offset. Decided writes (create task, bootstrap key, optimize, activate, retry
PR) wait for the row the projector writes in ``request_outcomes`` under the request id.
One poller serves every waiting request, so a burst of writes costs one small query
per tick rather than one per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api import SERVICE_NAME
from shared.events import codec
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.kafka.producer import EventLog, Position
from shared.readmodel.tables import projector_offsets, request_outcomes

log = logging.getLogger(__name__)
POLL_SECONDS = 0.005
T = TypeVar("T")


#: Kafka's default record limit is 1 MiB (producer ``max_request_size``, broker ``message.max.bytes``).
MAX_EVENT_BYTES = 1_000_000


class NotYetVisible(TimeoutError):
    """The event is durable in the log, but the projector did not show it in time."""


class EventTooLarge(ValueError):
    """The request would make a record larger than Kafka accepts; nothing was appended."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the request makes an event of {size} bytes; at most {MAX_EVENT_BYTES} are accepted"
        )


@dataclass(frozen=True)
class Outcome:
    """How the log's consumers decided a request."""

    accepted: bool
    entity_id: str | None
    reason: str | None
    detail: str | None


class ProjectionWatcher:
    """Resolves waiters as the projector's offsets and request outcomes appear."""

    def __init__(self, engine: AsyncEngine, interval: float = POLL_SECONDS) -> None:
        self._engine = engine
        self._interval = interval
        self._offsets: set[tuple[Position, asyncio.Future[None]]] = set()
        self._outcomes: dict[str, asyncio.Future[Outcome]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def applied(self, positions: list[Position], timeout: float) -> None:  # noqa: ASYNC109
        """Return once every position is applied; raise :class:`NotYetVisible` after ``timeout``."""
        loop = asyncio.get_running_loop()
        waiters = {(p, loop.create_future()) for p in positions}
        self._offsets |= waiters
        try:
            await self._wait(asyncio.gather(*(f for _, f in waiters)), timeout)
        finally:
            self._offsets -= waiters

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

    async def _poll(self) -> None:
        while self._offsets or self._outcomes:
            try:
                await self._tick()
            except (SQLAlchemyError, OSError):
                # The read model may be briefly unavailable; waiters time out if it stays so.
                log.warning("polling the read model failed", exc_info=True)
            await asyncio.sleep(self._interval)

    async def _tick(self) -> None:
        async with self._engine.connect() as conn:
            if self._offsets:
                rows = (await conn.execute(select(projector_offsets))).all()
                done = {(r.topic, r.partition): r.next_offset for r in rows}
                for position, future in list(self._offsets):
                    applied = done.get((position.topic, position.partition), 0) > position.offset
                    if applied and not future.done():
                        future.set_result(None)
            if self._outcomes:
                await self._resolve_outcomes(conn)

    async def _resolve_outcomes(self, conn: AsyncConnection) -> None:
        query = select(request_outcomes).where(request_outcomes.c.request_id.in_(list(self._outcomes)))
        for row in (await conn.execute(query)).all():
            waiter = self._outcomes.get(row.request_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(Outcome(row.outcome == "accepted", row.entity_id, row.reason, row.detail))

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)


class Writer:
    """Appends a request's events (correlated by its request id) and waits for the projector."""

    def __init__(self, events: EventLog, watcher: ProjectionWatcher, timeout: float) -> None:
        self.events = events
        self.watcher = watcher
        self.timeout = timeout

    async def append(self, request_id: str, events: list[Event]) -> list[Position]:
        """Append and wait for Kafka's acknowledgement; raises ``LogUnavailable``."""
        envelopes = [Envelope.wrap(e, source=SERVICE_NAME, correlation_id=request_id) for e in events]
        # Checked here: the producer would refuse it only after a round trip, looking like an outage.
        for envelope in envelopes:
            if (size := len(codec.encode(envelope))) > MAX_EVENT_BYTES:
                raise EventTooLarge(size)
        return await self.events.append_all(envelopes)

    async def write(self, request_id: str, *events: Event) -> list[Position]:
        """A plain write: append, then wait until the read model shows it."""
        positions = await self.append(request_id, list(events))
        await self.watcher.applied(positions, self.timeout)
        return positions

    async def decide(self, request_id: str, event: Event, timeout: float | None = None) -> Outcome:  # noqa: ASYNC109
        """A decided write: append, then wait for the consumers' decision on the request."""
        await self.append(request_id, [event])
        return await self.watcher.outcome(request_id, timeout or self.timeout)
