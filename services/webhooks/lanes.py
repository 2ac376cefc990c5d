"""Delivery lanes: one ordered queue per (subscription, job), each drained by its own task.

A lane sends its head event until it is delivered or dead, and only then the next one:
event n+1 of a job never reaches a subscriber before event n is settled. Lanes of other
jobs and other subscriptions run meanwhile, so a receiver that is down holds up only its
own lanes (for at most its bounded attempts), never the others nor the consumer loop,
which keeps polling (and so keeps its group membership) whatever the receivers do.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.webhooks import domain
from services.webhooks.adapters import Answer, AttemptLog, Receiver
from services.webhooks.domain import Ledger, Subscription
from services.webhooks.handlers import Subscriptions
from shared import metrics
from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.webhooks import WebhookDeliveryAttempted
from shared.git_policy import Origin, webhook_refusal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """Retry knobs (``KAIZEN_WEBHOOK_*``)."""

    max_attempts: int = 8
    backoff: float = 1.0
    cap: float = 600.0
    allowed: tuple[Origin, ...] = ()


@dataclass(frozen=True)
class Item:
    """One event to deliver on a lane, and the record it came from."""

    partition: int
    offset: int
    envelope: Envelope
    body: bytes


class Dispatcher:
    """Routes job events to lanes and settles records in the :class:`Ledger` as lanes finish."""

    def __init__(
        self,
        subscriptions: Subscriptions,
        receiver: Receiver,
        attempts: AttemptLog,
        policy: Policy,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.subscriptions = subscriptions
        self.receiver = receiver
        self.attempts = attempts
        self.policy = policy
        self.ledger = Ledger()
        self.clock = clock
        self.jitter = jitter
        self.failure: BaseException | None = None
        self._lanes: dict[tuple[uuid.UUID, uuid.UUID], collections.deque[Item]] = {}
        self._tasks: dict[tuple[uuid.UUID, uuid.UUID], asyncio.Task[None]] = {}

    def dispatch(self, partition: int, offset: int, envelope: Envelope | None) -> int:
        """Queue a record's deliveries; returns how many it started (0: settled at once)."""
        targets = self.subscriptions.route(envelope) if envelope is not None else []
        self.ledger.read(partition, offset, len(targets))
        if envelope is None or not targets:
            return 0
        # Re-encoded by the codec, the one producer of an event's bytes: an old record is
        # delivered as today's envelope (upcast), exactly as the log would hold it now.
        item = Item(partition, offset, envelope, codec.encode(envelope))
        job_id = envelope.job_id
        assert job_id is not None  # routed events are job events
        for sub in targets:
            key = (sub.id, job_id)
            self._lanes.setdefault(key, collections.deque()).append(item)
            if key not in self._tasks:
                task = asyncio.create_task(self._drain(key), name=f"webhook-lane-{sub.id}-{job_id}")
                task.add_done_callback(self._done)
                self._tasks[key] = task
        return len(targets)

    @property
    def lanes(self) -> int:
        return len(self._tasks)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()
            log.error("a webhook lane failed", exc_info=self.failure)

    async def _drain(self, key: tuple[uuid.UUID, uuid.UUID]) -> None:
        queue = self._lanes[key]
        try:
            while queue:
                item = queue[0]
                await self._deliver(key[0], item)
                queue.popleft()
                self.ledger.settle(item.partition, item.offset)
        finally:
            # A revoked lane was replaced meanwhile: leave the new one alone.
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
                if self._lanes.get(key) is queue and not queue:
                    del self._lanes[key]

    async def _deliver(self, subscription_id: uuid.UUID, item: Item) -> None:
        for attempt in range(1, self.policy.max_attempts + 1):
            sub = self.subscriptions.by_id.get(subscription_id)
            if sub is None:
                return  # deleted meanwhile: nothing more is sent to it
            why = self._refusal(sub)
            if why is not None:  # no request at all: it would never succeed by retrying
                answer, verdict = Answer(None, error=why), domain.Verdict("dead")
            else:
                answer = await self._post(sub, item)
                verdict = domain.judge(
                    answer.status,
                    attempt,
                    self.policy.max_attempts,
                    domain.parse_retry_after(answer.retry_after, self.clock()),
                    self.policy.backoff,
                    self.policy.cap,
                    self.jitter,
                )
            metrics.WEBHOOK_DELIVERIES.labels(verdict.outcome).inc()
            await self.attempts.record(_attempt_event(sub, item, attempt, answer, verdict), item.envelope)
            if verdict.outcome != "retrying":
                return
            assert verdict.delay is not None
            await asyncio.sleep(verdict.delay)

    def _refusal(self, sub: Subscription) -> str | None:
        why = webhook_refusal(sub.url, self.policy.allowed)
        if why is None and sub.secret is None:
            why = "the signing secret does not decrypt with this installation's KAIZEN_SECRET_KEY"
        return why

    async def _post(self, sub: Subscription, item: Item) -> Answer:
        timestamp = int(self.clock().timestamp())
        headers = domain.headers(sub.secret or "", str(item.envelope.id), timestamp, item.body)
        return await self.receiver.post(sub.url, item.body, headers, sub.secret)

    def revoke(self, partitions: set[int]) -> None:
        """Stop the lanes of revoked partitions; their new owner redelivers what was open."""
        for key, queue in list(self._lanes.items()):
            if queue and queue[0].partition in partitions:
                task = self._tasks.pop(key, None)
                if task is not None:
                    task.cancel()
                self._lanes.pop(key, None)
        for partition in partitions:
            self.ledger.forget(partition)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def _attempt_event(
    sub: Subscription, item: Item, attempt: int, answer: Answer, verdict: domain.Verdict
) -> WebhookDeliveryAttempted:
    envelope = item.envelope
    assert envelope.task_id is not None
    return WebhookDeliveryAttempted(
        subscription_id=sub.id,
        task_id=envelope.task_id,
        event_id=envelope.id,
        event_type=envelope.type,
        event_job_id=envelope.job_id,
        attempt=attempt,
        outcome=verdict.outcome,
        status_code=answer.status,
        error=answer.error[:500] if answer.error else None,
        response_snippet=answer.snippet[:200] if answer.snippet else None,
        duration_ms=max(0.0, answer.duration_ms),
        retry_in_seconds=verdict.delay,
    )
