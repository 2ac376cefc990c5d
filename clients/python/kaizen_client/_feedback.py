"""The non-blocking ``feedback()`` both clients share: ``BufferedFeedback`` and the item's encoding."""

from __future__ import annotations

import atexit
import json
import threading
import uuid
from typing import Any

import httpx

from kaizen_client._wire import client_headers
from kaizen_client.buffer import FeedbackBuffer, Stats
from kaizen_client.endpoints import ENDPOINTS, IDEMPOTENCY

#: The sender posts pre-encoded bytes, so it takes only the method and path from the table.
_BATCH = ENDPOINTS["feedback.batch"]


def feedback_item(
    task_id: uuid.UUID | str,
    inputs: dict[str, Any],
    output: str,
    score: float,
    source: str,
    metadata: dict[str, Any] | None,
) -> bytes:
    """One item's JSON, encoded without validation (the server judges it): the hot path stays cheap."""
    item = {
        "task_id": str(task_id),
        "inputs": inputs,
        "output": output,
        "score": score,
        "source": source,
        "metadata": metadata or {},
    }
    return _encode(item).encode()


#: Compact JSON; a value JSON cannot carry is sent as its ``str()`` rather than refused here.
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


class BufferedFeedback:
    """The part of both clients that never blocks: ``feedback()``, ``flush()``, ``stats``.

    The buffer posts with its own ``httpx.Client`` on its own thread, so an ``AsyncKaizen``
    uses it too without touching the application's event loop.
    """

    def _init_buffer(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float,
        buffer_size: int,
        batch_size: int,
        flush_interval: float,
        retry_for: float,
        exit_timeout: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self._sender_http: httpx.Client | None = None
        self._sender_lock = threading.Lock()
        self._sender_args = (base_url, api_key, timeout, transport)
        self._buffer = FeedbackBuffer(
            self._post_batch,
            capacity=buffer_size,
            batch_size=batch_size,
            flush_interval=flush_interval,
            retry_for=retry_for,
        )
        self._exit_timeout = exit_timeout
        atexit.register(self._at_exit)

    def feedback(
        self,
        task_id: uuid.UUID | str,
        inputs: dict[str, Any],
        output: str,
        score: float,
        *,
        source: str = "sdk",
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Queue one scored output; returns at once. Never raises, never blocks, sends nothing here.

        ``False`` means it was dropped (the buffer is full) and counted in ``stats.dropped``.
        """
        try:
            return self._buffer.put(feedback_item(task_id, inputs, output, score, source, metadata))
        except Exception:  # the application must never see an error from here
            return False

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait (at most ``timeout`` s) until every queued item is delivered, refused or dropped."""
        return self._buffer.flush(timeout)

    @property
    def stats(self) -> Stats:
        return self._buffer.stats

    def _post_batch(self, body: bytes, key: str) -> httpx.Response:
        with self._sender_lock:
            if self._sender_http is None:
                base_url, api_key, timeout, transport = self._sender_args
                self._sender_http = httpx.Client(
                    base_url=base_url, headers=client_headers(api_key), timeout=timeout, transport=transport
                )
        headers = {"Content-Type": "application/json", IDEMPOTENCY: key}
        return self._sender_http.request(_BATCH.method, _BATCH.path, content=body, headers=headers)

    def _close_buffer(self, timeout: float) -> bool:
        atexit.unregister(self._at_exit)
        flushed = self._buffer.close(timeout)
        if self._sender_http is not None:
            self._sender_http.close()
        return flushed

    def _at_exit(self) -> None:
        self._buffer.close(self._exit_timeout)
