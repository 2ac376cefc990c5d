"""The webhooks service's pure decisions: signature, routing, retry timing, commit offsets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.projector.handlers import _OF_A_JOB
from services.webhooks import domain
from services.webhooks.domain import Ledger, Subscription
from shared.events import jobs, keys, prs
from shared.events.envelope import Envelope
from shared.events.webhooks import JOB_EVENT_TYPES
from tests.support.webhook_receiver import documented_verify as _documented

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TASK = uuid.uuid4()
JOB = uuid.uuid4()
documented_verify = _documented()


def test_the_signature_reproduces_the_standard_webhooks_test_vector() -> None:
    # The published vector of the Standard Webhooks reference libraries: any receiver
    # library that verifies it verifies ours.
    signature = domain.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@given(body=st.binary(max_size=200), msg_id=st.uuids(), seconds=st.integers(0, 2**33))
def test_the_documented_snippet_verifies_every_signed_delivery_and_refuses_a_changed_body(
    body: bytes, msg_id: uuid.UUID, seconds: int
) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = domain.headers(secret, str(msg_id), seconds, body)
    assert headers["content-type"] == "application/cloudevents+json"
    assert headers["webhook-id"] == str(msg_id)
    documented_verify(secret, headers, body, now=seconds)
    with pytest.raises(ValueError):
        documented_verify(secret, headers, body + b" ", now=seconds)
    with pytest.raises(ValueError):
        documented_verify(secret, headers, body, now=seconds + 3600)


def _sub(**overrides: object) -> Subscription:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "url": "https://hooks.example.com/k",
        "type_filter": frozenset(),
        "task_filter": None,
        "secret": "whsec_AAAA",
        "created_at": T0,
    }
    return Subscription(**{**values, **overrides})  # type: ignore[arg-type]


def _job_event(time: datetime = T0 + timedelta(seconds=1), task: uuid.UUID = TASK) -> Envelope:
    event = jobs.JobSucceeded(job_id=JOB, task_id=task)
    return Envelope.wrap(event, source="optimizer", time=time)


def test_the_delivered_types_are_exactly_those_of_a_jobs_history() -> None:
    # What GET /api/v1/jobs/{id}/events shows is what a subscriber gets.
    assert {cls.TYPE for cls in _OF_A_JOB} == JOB_EVENT_TYPES
    assert {"kaizen.job.started.v1", "kaizen.job.succeeded.v1", "kaizen.pr.created.v1"} <= JOB_EVENT_TYPES
    assert prs.PrFailed.TYPE in JOB_EVENT_TYPES
    assert keys.ApiKeyCreated.TYPE not in JOB_EVENT_TYPES
    assert not any(t.startswith("kaizen.webhook.") for t in JOB_EVENT_TYPES)


def test_a_subscription_gets_events_of_its_filters_from_its_creation_on() -> None:
    assert domain.matches(_sub(), _job_event())
    assert not domain.matches(_sub(), _job_event(time=T0 - timedelta(seconds=1)))
    assert domain.matches(_sub(type_filter=frozenset({jobs.JobSucceeded.TYPE})), _job_event())
    assert not domain.matches(_sub(type_filter=frozenset({jobs.JobFailed.TYPE})), _job_event())
    assert domain.matches(_sub(task_filter=TASK), _job_event())
    assert not domain.matches(_sub(task_filter=uuid.uuid4()), _job_event())


def test_only_2xx_delivers_and_the_last_attempt_is_dead() -> None:
    def judge(status: int | None, attempt: int) -> domain.Verdict:
        return domain.judge(status, attempt, 3, None, 1.0, 60.0, lambda: 0.5)

    assert judge(204, 1).outcome == "delivered"
    for status in (None, 301, 302, 400, 429, 500, 503):
        assert judge(status, 1).outcome == "retrying"
        assert judge(status, 3).outcome == "dead"


@given(
    attempt=st.integers(1, 30),
    jitter=st.floats(0, 1, exclude_max=True),
    retry_after=st.none() | st.floats(0, 10_000),
    backoff=st.floats(0.01, 10),
    cap=st.floats(1, 3600),
)
def test_delays_grow_within_the_cap_and_honour_retry_after(
    attempt: int, jitter: float, retry_after: float | None, backoff: float, cap: float
) -> None:
    delay = domain.retry_delay(attempt, retry_after, backoff, cap, lambda: jitter)
    ceiling = min(cap, backoff * 2 ** (attempt - 1))
    assert 0 <= delay <= cap
    assert delay >= ceiling / 2 - 1e-9
    if retry_after is not None:
        assert delay >= min(cap, retry_after)
    else:
        assert delay <= ceiling + 1e-9


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert domain.parse_retry_after("120", T0) == 120.0
    assert domain.parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", T0) == 30.0
    assert domain.parse_retry_after("soon", T0) is None
    assert domain.parse_retry_after(None, T0) is None


@st.composite
def _histories(draw: st.DrawFn) -> tuple[list[int], list[tuple[int, int]]]:
    """Records 0..n-1 with their delivery counts, and an order in which deliveries settle."""
    counts = draw(st.lists(st.integers(0, 3), min_size=1, max_size=20))
    settles = [(offset, i) for offset, n in enumerate(counts) for i in range(n)]
    return counts, draw(st.permutations(settles))


@given(_histories(), st.data())
def test_the_committed_offset_never_passes_an_unsettled_delivery(
    history: tuple[list[int], list[tuple[int, int]]], data: st.DataObject
) -> None:
    counts, order = history
    ledger = Ledger()
    for offset, n in enumerate(counts):
        ledger.read(0, offset, n)
    left = dict(enumerate(counts))
    cut = data.draw(st.integers(0, len(order)))
    for offset, _ in order[:cut]:
        ledger.settle(0, offset)
        left[offset] -= 1
        committable = ledger.committable(0)
        assert committable is not None
        assert all(left[o] == 0 for o in range(committable)), "committed past an open delivery"
        open_offsets = [o for o, n in left.items() if n > 0]
        assert committable == (min(open_offsets) if open_offsets else len(counts))
    if cut == len(order):
        assert ledger.committable(0) == len(counts) and ledger.pending(0) == 0


def test_a_forgotten_partition_commits_nothing() -> None:
    ledger = Ledger()
    ledger.read(1, 5, 2)
    assert ledger.committable(1) == 5 and ledger.committable(2) is None
    ledger.forget(1)
    assert ledger.committable(1) is None
