"""Delivery lanes without Kafka or HTTP: an in-memory receiver and attempt log.

Per (subscription, job), event n+1 waits until event n is delivered or dead; other jobs'
lanes do not wait for a failing one; a deleted subscription gets nothing more; the
ledger settles a record only when all its deliveries ended.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from services.webhooks.adapters import Answer, HttpReceiver
from services.webhooks.domain import Subscription
from services.webhooks.handlers import Subscriptions
from services.webhooks.lanes import Dispatcher, Policy
from shared.events import jobs
from shared.events.envelope import Envelope
from shared.events.webhooks import WebhookDeliveryAttempted
from shared.git_policy import parse_allowlist

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TASK = uuid.uuid4()
ORIGIN = "https://hooks.example.com"


class FakeReceiver:
    """Answers 503 for the event ids in ``failing`` (until removed), 204 otherwise."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.log: list[tuple[str, str]] = []  # (url, webhook-id) per request

    async def post(self, url: str, body: bytes, headers: dict[str, str], secret: str | None) -> Answer:
        await asyncio.sleep(0)
        self.log.append((url, headers["webhook-id"]))
        status = 503 if headers["webhook-id"] in self.failing else 204
        return Answer(status, None if status == 204 else "HTTP 503")


class FakeAttempts:
    def __init__(self) -> None:
        self.recorded: list[WebhookDeliveryAttempted] = []

    async def record(self, attempt: WebhookDeliveryAttempted, cause: Envelope) -> None:
        self.recorded.append(attempt)


def _subscriptions(*urls: str) -> Subscriptions:
    subs = Subscriptions(decrypt=lambda c: c)
    for url in urls:
        sid = uuid.uuid4()
        subs.by_id[sid] = Subscription(sid, url, frozenset(), None, "whsec_AAAA", T0)
    return subs


def _events(job_id: uuid.UUID, n: int) -> list[Envelope]:
    made = [jobs.JobStarted(job_id=job_id, task_id=TASK, worker="w", teacher_model="t", judge_model="j")]
    made += [
        jobs.JobTrialCompleted(job_id=job_id, task_id=TASK, trial=i + 1, score=0.5, best_score=0.5)
        for i in range(n - 1)
    ]
    return [Envelope.wrap(e, source="optimizer", time=T0 + timedelta(seconds=1)) for e in made]


def _dispatcher(
    subs: Subscriptions, receiver: FakeReceiver, attempts: FakeAttempts, **policy: object
) -> Dispatcher:
    values: dict[str, object] = {
        "max_attempts": 3,
        "backoff": 0.001,
        "cap": 0.01,
        "allowed": parse_allowlist(ORIGIN),
    }
    return Dispatcher(subs, receiver, attempts, Policy(**{**values, **policy}), jitter=lambda: 0.0)  # type: ignore[arg-type]


async def _settled(dispatcher: Dispatcher, partition: int, offset: int) -> None:
    async with asyncio.timeout(5):
        while dispatcher.ledger.committable(partition) != offset or dispatcher.lanes:
            await asyncio.sleep(0.001)


async def test_a_jobs_next_event_waits_until_the_previous_one_is_delivered_or_dead() -> None:
    subs, receiver, attempts = _subscriptions(f"{ORIGIN}/a"), FakeReceiver(), FakeAttempts()
    dispatcher = _dispatcher(subs, receiver, attempts)
    events = _events(uuid.uuid4(), 3)
    receiver.failing = {str(events[0].id)}  # the first event dies after 3 attempts
    for offset, envelope in enumerate(events):
        assert dispatcher.dispatch(0, offset, envelope) == 1
    await _settled(dispatcher, 0, 3)
    ids = [msg_id for _, msg_id in receiver.log]
    assert ids == [str(events[0].id)] * 3 + [str(events[1].id), str(events[2].id)]
    assert [(a.attempt, a.outcome) for a in attempts.recorded] == [
        (1, "retrying"),
        (2, "retrying"),
        (3, "dead"),
        (1, "delivered"),
        (1, "delivered"),
    ]


async def test_a_failing_lane_holds_the_commit_but_not_other_jobs_or_subscribers() -> None:
    subs, receiver, attempts = _subscriptions(f"{ORIGIN}/a", f"{ORIGIN}/b"), FakeReceiver(), FakeAttempts()
    dispatcher = _dispatcher(subs, receiver, attempts, max_attempts=10_000)
    stuck, free = _events(uuid.uuid4(), 1), _events(uuid.uuid4(), 2)
    receiver.failing = {str(stuck[0].id)}
    dispatcher.dispatch(0, 0, stuck[0])
    dispatcher.dispatch(0, 1, free[0])
    dispatcher.dispatch(0, 2, free[1])
    async with asyncio.timeout(5):
        while sum(1 for _, i in receiver.log if i in {str(e.id) for e in free}) < 4:
            await asyncio.sleep(0.001)
    # Both subscribers got the other job's events; the stuck record keeps the commit at 0.
    assert dispatcher.ledger.committable(0) == 0
    receiver.failing.clear()
    await _settled(dispatcher, 0, 3)
    await dispatcher.close()


async def test_a_deleted_subscription_gets_no_more_attempts() -> None:
    subs, receiver, attempts = _subscriptions(f"{ORIGIN}/a"), FakeReceiver(), FakeAttempts()
    dispatcher = _dispatcher(subs, receiver, attempts, max_attempts=10_000)
    [event] = _events(uuid.uuid4(), 1)
    receiver.failing = {str(event.id)}
    dispatcher.dispatch(0, 0, event)
    async with asyncio.timeout(5):
        while len(receiver.log) < 2:
            await asyncio.sleep(0.001)
    subs.by_id.clear()
    await _settled(dispatcher, 0, 1)
    sent = len(receiver.log)
    await asyncio.sleep(0.05)
    assert len(receiver.log) == sent


async def test_a_target_no_longer_allowed_is_dead_without_a_request() -> None:
    subs, receiver, attempts = _subscriptions("https://gone.example.com/a"), FakeReceiver(), FakeAttempts()
    dispatcher = _dispatcher(subs, receiver, attempts)
    [event] = _events(uuid.uuid4(), 1)
    dispatcher.dispatch(0, 0, event)
    await _settled(dispatcher, 0, 1)
    assert receiver.log == []
    [attempt] = attempts.recorded
    assert attempt.outcome == "dead" and attempt.error and "KAIZEN_WEBHOOK_HOSTS" in attempt.error


async def test_records_without_a_matching_subscription_settle_at_once() -> None:
    dispatcher = _dispatcher(_subscriptions(), FakeReceiver(), FakeAttempts())
    assert dispatcher.dispatch(2, 7, _events(uuid.uuid4(), 1)[0]) == 0
    assert dispatcher.dispatch(2, 8, None) == 0
    assert dispatcher.ledger.committable(2) == 9


async def test_the_http_receiver_follows_no_redirect_and_keeps_a_short_redacted_snippet() -> None:
    secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM0NTY="

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"location": "https://elsewhere.example.com/x"})
        if request.url.path == "/busy":
            return httpx.Response(503, headers={"retry-after": "7"}, text=f"echo {secret} " + "x" * 10_000)
        return httpx.Response(204)

    receiver = HttpReceiver(5.0, transport=httpx.MockTransport(answer))
    try:
        moved = await receiver.post(f"{ORIGIN}/moved", b"{}", {}, secret)
        assert moved.status == 302 and moved.error and "not followed" in moved.error
        busy = await receiver.post(f"{ORIGIN}/busy", b"{}", {}, secret)
        assert busy.status == 503 and busy.retry_after == "7" and busy.error == "HTTP 503"
        assert busy.snippet is not None and len(busy.snippet) <= 200 and secret not in busy.snippet
        assert busy.snippet.startswith("echo ***")
        ok = await receiver.post(f"{ORIGIN}/ok", b"{}", {}, secret)
        assert ok.status == 204 and ok.error is None
    finally:
        await receiver.close()
