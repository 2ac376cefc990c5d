"""The webhooks service's decisions. Pure: no I/O, no clock, no randomness of its own.

- which job events go to which subscription (:func:`matches`);
- how a delivery is signed (Standard Webhooks, :func:`sign`);
- what an attempt's answer means and when to try again (:func:`judge`, :func:`retry_delay`);
- which offset may be committed (:class:`Ledger`): never past a record whose deliveries
  are not all settled, so a killed service redelivers them after its restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from shared.events.envelope import Envelope
from shared.events.webhooks import JOB_EVENT_TYPES, DeliveryOutcome

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


@dataclass(frozen=True)
class Subscription:
    """A subscription as the service holds it (its secret decrypted, in memory only)."""

    id: uuid.UUID
    url: str
    type_filter: frozenset[str]
    task_filter: uuid.UUID | None
    #: ``None`` when the stored ciphertext does not decrypt with this installation's key.
    secret: str | None
    created_at: datetime


def is_job_event(envelope: Envelope) -> bool:
    return envelope.type in JOB_EVENT_TYPES and envelope.job_id is not None


def matches(sub: Subscription, envelope: Envelope) -> bool:
    """Whether ``sub`` gets this event: a job event of its filters, from after it was created.

    The creation time rule makes a new subscription start "from now" however far back
    the service's consumer group is reading (a first start, a redelivery).
    """
    if not is_job_event(envelope) or envelope.time < sub.created_at:
        return False
    if sub.type_filter and envelope.type not in sub.type_filter:
        return False
    return sub.task_filter is None or envelope.task_id == sub.task_filter


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header of a delivery (structured-mode CloudEvent, Standard Webhooks signature)."""
    return {
        "content-type": "application/cloudevents+json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


@dataclass(frozen=True)
class Verdict:
    outcome: DeliveryOutcome
    #: Seconds before the next attempt (``retrying`` only).
    delay: float | None = None


def delivered(status: int | None) -> bool:
    """A 2xx answer delivers; a redirect, any other status or no answer does not."""
    return status is not None and 200 <= status < 300


def judge(
    status: int | None,
    attempt: int,
    max_attempts: int,
    retry_after: float | None,
    backoff: float,
    cap: float,
    jitter: Callable[[], float],
) -> Verdict:
    """How attempt number ``attempt`` (1-based) ended, and when the next one runs."""
    if delivered(status):
        return Verdict("delivered")
    if attempt >= max_attempts:
        return Verdict("dead")
    return Verdict("retrying", retry_delay(attempt, retry_after, backoff, cap, jitter))


def retry_delay(
    attempt: int, retry_after: float | None, backoff: float, cap: float, jitter: Callable[[], float]
) -> float:
    """Exponential backoff with ("equal") jitter, at least ``Retry-After``, at most ``cap``.

    ``jitter()`` returns a number in [0, 1): the delay is uniform in [ceiling / 2,
    ceiling], ceiling = ``backoff`` · 2^(attempt-1), so receivers that failed together
    spread their retries out, and each delay still grows.
    """
    ceiling = min(cap, backoff * 2 ** (attempt - 1))
    delay = ceiling / 2 + jitter() * ceiling / 2
    if retry_after is not None:
        delay = max(delay, retry_after)
    return float(min(cap, delay))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date); ``None`` when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


class Ledger:
    """Per partition: the records read and not yet settled, and the offset safe to commit.

    A record is settled when every delivery it started has ended (delivered or dead), or
    at once when it matched no subscription. The committable offset is the first
    unsettled record's, or one past the last record read when all are settled.
    """

    def __init__(self) -> None:
        self._open: dict[int, dict[int, int]] = {}  # partition -> offset -> deliveries left
        self._read: dict[int, int] = {}  # partition -> next offset after the last record read

    def read(self, partition: int, offset: int, deliveries: int) -> None:
        self._read[partition] = max(self._read.get(partition, 0), offset + 1)
        if deliveries > 0:
            self._open.setdefault(partition, {})[offset] = deliveries

    def settle(self, partition: int, offset: int) -> None:
        """One delivery of the record at ``offset`` ended."""
        left = self._open.get(partition, {})
        if offset in left:
            left[offset] -= 1
            if left[offset] <= 0:
                del left[offset]

    def committable(self, partition: int) -> int | None:
        """The offset to commit for ``partition`` (``None``: nothing read yet)."""
        if partition not in self._read:
            return None
        left = self._open.get(partition)
        return min(left) if left else self._read[partition]

    def pending(self, partition: int) -> int:
        return len(self._open.get(partition, {}))

    def forget(self, partition: int) -> None:
        """The partition was revoked: its new owner redelivers what was open here."""
        self._open.pop(partition, None)
        self._read.pop(partition, None)
