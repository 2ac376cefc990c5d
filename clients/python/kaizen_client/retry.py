"""When to retry, and how long to wait: exponential backoff with full jitter, or ``Retry-After``."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

#: Answers worth retrying: overload, and the writes that are safe to repeat with the same key.
RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Backoff:
    base: float = 0.2
    cap: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry ``attempt`` (1, 2, …): the server's ``Retry-After`` if it gave one."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap * 6)
        return random.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))


def retry_after(response: httpx.Response | None) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), if present."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None
