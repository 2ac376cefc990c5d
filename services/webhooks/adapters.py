"""The webhooks service's side effects: HTTP to receivers, the subscriptions feed, attempt events.

:class:`Receiver` is the port a delivery goes through; :class:`HttpReceiver` is the real
one (httpx, a timeout, no redirects followed, at most a short answer read), and tests may
pass any object with its ``post``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.webhooks import SERVICE_NAME
from services.webhooks.handlers import Subscriptions
from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.webhooks import WebhookDeliveryAttempted
from shared.git_policy import for_users
from shared.kafka.producer import EventLog, LogUnavailable
from shared.kafka.security import client_options

log = logging.getLogger(__name__)

#: How much of a receiver's answer is read, and how much of it is kept (redacted) in the view.
READ_LIMIT = 4096
SNIPPET_LIMIT = 200
RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Answer:
    """How one HTTP attempt ended: a status (``None``: no answer) and what to record of it."""

    status: int | None
    error: str | None = None
    snippet: str | None = None
    retry_after: str | None = None
    duration_ms: float = 0.0


class Receiver(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str], secret: str | None) -> Answer: ...


class HttpReceiver:
    """POSTs with httpx: one client (pooled connections), a timeout, redirects not followed."""

    def __init__(self, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """``transport``: httpx's default (real connections) unless a test passes one."""
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)

    async def post(self, url: str, body: bytes, headers: dict[str, str], secret: str | None) -> Answer:
        started = time.monotonic()
        try:
            async with self._client.stream("POST", url, content=body, headers=headers) as response:
                raw = b""
                async for chunk in response.aiter_bytes():
                    raw += chunk
                    if len(raw) >= READ_LIMIT:
                        break
        except httpx.HTTPError as exc:
            failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Answer(None, error=for_users(failure, secret), duration_ms=_ms(started))
        snippet = for_users(raw.decode(errors="replace"), secret, SNIPPET_LIMIT) or None
        status = response.status_code
        error = None
        if response.is_redirect:
            error = for_users(f"redirect to {response.headers.get('location', '?')} not followed", secret)
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
        return Answer(status, error, snippet, response.headers.get("retry-after"), _ms(started))

    async def close(self) -> None:
        await self._client.aclose()


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


class AttemptLog:
    """Appends ``WebhookDeliveryAttempted`` events, retrying until Kafka takes them or ``stop``."""

    def __init__(self, events: EventLog, stop: asyncio.Event) -> None:
        self.events = events
        self.stop = stop

    async def record(self, attempt: WebhookDeliveryAttempted, cause: Envelope) -> None:
        # A fresh id per attempt: each attempt is its own observation, even a repeat after a restart.
        envelope = Envelope.wrap(attempt, source=SERVICE_NAME, causation=cause)
        while True:
            try:
                await self.events.append(envelope)
                return
            except LogUnavailable as exc:
                if self.stop.is_set():
                    raise
                log.warning("recording a webhook attempt failed, retrying: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)


class SubscriptionFeed:
    """Folds the keys topic (one partition, no consumer group) into :class:`Subscriptions`."""

    def __init__(self, bootstrap: str, topic: str, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions
        self._bootstrap = bootstrap
        self._partition = TopicPartition(topic, 0)
        self._next_offset = 0

    async def follow(self, stop: asyncio.Event) -> None:
        """Read the topic until ``stop``, reconnecting from where it stopped after a failure."""
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                enable_auto_commit=False,
                isolation_level="read_committed",
                **client_options(),
            )
            try:
                await consumer.start()
                consumer.assign([self._partition])
                consumer.seek(self._partition, self._next_offset)
                while not stop.is_set():
                    batches = await consumer.getmany(self._partition, timeout_ms=200)
                    for record in batches.get(self._partition, []):
                        self._fold(record.offset, record.value)
                    self._next_offset = max(self._next_offset, await consumer.position(self._partition))
            except (KafkaError, OSError) as exc:
                log.warning("reading the subscriptions failed, reconnecting: %r", exc)
            finally:
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
            if not stop.is_set():
                await asyncio.sleep(RETRY_SECONDS)

    def _fold(self, offset: int, value: bytes | None) -> None:
        try:
            self.subscriptions.apply(codec.decode(value))
        except codec.PoisonRecord as exc:
            log.warning("skipping undecodable keys record at offset %d: %s", offset, exc.reason)

    async def sync(self, probe: AIOKafkaConsumer, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Return once every subscription change in the log now has been folded.

        Called before each batch of job events: a subscription acknowledged before a job
        event was written is then known when that event is routed. ``probe`` (a consumer
        not used concurrently, here the group's own) asks the log where its end is now.
        """
        async with asyncio.timeout(timeout):
            end = (await probe.end_offsets([self._partition]))[self._partition]
            while self._next_offset < end:
                await asyncio.sleep(0.02)
