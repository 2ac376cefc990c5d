"""The feedback buffer: ``put`` never blocks and never raises; a daemon thread ships batches.

The caller's thread only appends the item's JSON (bytes, encoded by the caller: a later
change to the caller's dicts changes nothing, and bytes add no work to the garbage
collector, whose full passes over a buffer of dicts stalled callers for hundreds of ms)
to a bounded deque.
A background thread takes up to ``batch_size`` items (and at most ``max_batch_bytes`` of
JSON) at a time and posts them to ``/api/v1/feedback/batch`` with an ``Idempotency-Key``
that stays the same across every retry of that batch, so a batch whose answer was lost
is never recorded twice. Retries back off exponentially with full jitter and honour
``Retry-After``.

What is lost, and when, is counted in :class:`Stats`, never raised:

- ``dropped``: the buffer was full when ``put`` was called, or a batch could not be
  delivered within ``retry_for`` seconds (server unreachable or overloaded);
- ``failed``: the server refused the item (e.g. an unknown task, a score above 1), or
  refused the whole batch with an error a retry cannot fix (401, 403, 422).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from kaizen_client.retry import RETRIABLE_STATUSES, Backoff, retry_after

log = logging.getLogger("kaizen_client")

#: Posts one batch body with its idempotency key; returns the answer (or raises httpx.HTTPError).
Post = Callable[[bytes, str], httpx.Response]


@dataclass(frozen=True)
class Stats:
    """Counters since the client was created. ``queued`` is in the buffer or in flight now."""

    queued: int
    sent: int
    dropped: int
    retries: int
    failed: int


class FeedbackBuffer:
    def __init__(
        self,
        post: Post,
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        max_batch_bytes: int = 900_000,
        flush_interval: float = 0.5,
        retry_for: float = 60.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._post = post
        self._capacity = capacity
        self._batch_size = min(batch_size, 1000)
        self._max_batch_bytes = max_batch_bytes
        self._flush_interval = flush_interval
        self._retry_for = retry_for
        self._backoff = backoff or Backoff()
        self._items: deque[bytes] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._counts = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._sent = self._dropped = self._retries = self._failed = 0

    # --- the caller's side: no I/O, no waiting --------------------------------------------

    def put(self, item: bytes) -> bool:
        """Queue one item's JSON; ``False`` (and counted as dropped) when the buffer is full or closed."""
        items = self._items
        if len(items) >= self._capacity or self._stop.is_set():
            self._count_dropped(1)
            return False
        items.append(item)
        if self._thread is None:
            self._start()
        if len(items) == self._batch_size:
            self._wake.set()
        return True

    @property
    def stats(self) -> Stats:
        with self._counts:
            return Stats(
                queued=len(self._items) + self._in_flight,
                sent=self._sent,
                dropped=self._dropped,
                retries=self._retries,
                failed=self._failed,
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Ship everything queued now; ``True`` once nothing is queued or in flight."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._items or self._in_flight:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for at most ``timeout`` seconds, then stop the sender; whatever is left is dropped."""
        flushed = self.flush(timeout)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(1.0)
        left = len(self._items)
        if left:
            self._items.clear()
            self._count_dropped(left)
        return flushed

    # --- the sender thread -----------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="kaizen-feedback-sender", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            while self._items and not self._stop.is_set():
                batch = self._take()
                try:
                    self._ship(batch)
                except Exception:  # the sender must outlive any surprise; the items are counted
                    log.exception("kaizen: a feedback batch could not be sent")
                    self._count(failed=len(batch))
                finally:
                    with self._idle:
                        self._in_flight = 0
                        self._idle.notify_all()
            with self._idle:
                self._idle.notify_all()

    def _take(self) -> list[bytes]:
        """Up to ``batch_size`` items and about ``max_batch_bytes`` of JSON."""
        batch: list[bytes] = []
        size = 0
        with self._idle:
            while self._items and len(batch) < self._batch_size:
                item = self._items.popleft()
                if batch and size + len(item) > self._max_batch_bytes:
                    self._items.appendleft(item)
                    break
                batch.append(item)
                size += len(item) + 1
            self._in_flight = len(batch)
        return batch

    def _ship(self, batch: list[bytes]) -> None:
        if not batch:
            return
        body = b'{"items":[' + b",".join(batch) + b"]}"
        key = str(uuid.uuid4())
        give_up = time.monotonic() + self._retry_for
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            try:
                response = self._post(body, key)
            except httpx.HTTPError as exc:
                log.debug("kaizen: feedback batch attempt %d failed: %r", attempt, exc)
            if response is not None and response.status_code < 300:
                self._delivered(response, len(batch))
                return
            if response is not None and response.status_code == 413 and len(batch) > 1:
                half = len(batch) // 2
                self._ship(batch[:half])
                self._ship(batch[half:])
                return
            if response is not None and response.status_code not in RETRIABLE_STATUSES:
                log.warning("kaizen: the server refused a feedback batch: %s", response.text[:300])
                self._count(failed=len(batch))
                return
            delay = self._backoff.delay(attempt, retry_after(response))
            if time.monotonic() + delay > give_up or self._stop.is_set():
                self._count(dropped=len(batch))
                return
            self._count(retries=1)
            self._stop.wait(delay)

    def _delivered(self, response: httpx.Response, size: int) -> None:
        try:
            result = response.json()
            accepted, refused = int(result["accepted"]), int(result["refused"])
        except (ValueError, KeyError, TypeError):
            accepted, refused = size, 0
        self._count(sent=accepted, failed=refused)

    def _count_dropped(self, n: int) -> None:
        with self._counts:
            self._dropped += n

    def _count(self, *, sent: int = 0, dropped: int = 0, retries: int = 0, failed: int = 0) -> None:
        with self._counts:
            self._sent += sent
            self._dropped += dropped
            self._retries += retries
            self._failed += failed
