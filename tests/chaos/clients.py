"""The chaos tier's clients: feedback writers and an optimize requester, each a thread.

A writer posts numbered feedback (``metadata = {"client": c, "seq": s}``) with an
``Idempotency-Key`` per write and retries a write that got a 503, a 504 or no answer with
the same key, as a careful client does, until it is acknowledged (a 201) or its retry
budget is spent. It records every attempt, so the checks know exactly which writes were
acknowledged and under which feedback id.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fakes.scripted_llm import make_tickets

#: Statuses (and "no answer") after which the same write is sent again.
RETRIED = {503, 504, "no answer"}
#: How long one write keeps being retried before the client gives up on it.
RETRY_BUDGET_SECONDS = 30.0
#: Long enough for a write that waits for the projector (KAIZEN_WRITE_TIMEOUT_SECONDS, 10 s).
REQUEST_TIMEOUT = 20.0


@dataclass
class Write:
    client: int
    seq: int
    task_id: str
    idempotency_key: str
    attempts: list[int | str] = field(default_factory=list)
    feedback_id: str | None = None  # from the 201

    @property
    def acknowledged(self) -> bool:
        return self.feedback_id is not None


def attempt_outcome(call: Any) -> tuple[int | str, httpx.Response | None]:
    """An HTTP call's status, or ``"no answer"`` when the connection failed or timed out."""
    try:
        response: httpx.Response = call()
    except httpx.TransportError:
        return "no answer", None
    return response.status_code, response


def backoff(attempt: int) -> float:
    return float(min(0.2 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))


class FeedbackWriter(threading.Thread):
    """Client ``client``: numbered feedback to ``task_ids`` in turn until ``stop`` is set."""

    def __init__(self, api_url: str, key: str, client: int, task_ids: list[str], stop: threading.Event):
        super().__init__(name=f"feedback-writer-{client}", daemon=True)
        self.api_url, self.key, self.client, self.task_ids, self.stop = api_url, key, client, task_ids, stop
        self.writes: list[Write] = []
        self.tickets = make_tickets(300, seed=client)

    def run(self) -> None:
        with httpx.Client(
            base_url=self.api_url, headers={"X-API-Key": self.key}, timeout=REQUEST_TIMEOUT
        ) as api:
            seq = 0
            while not self.stop.is_set():
                seq += 1
                task_id = self.task_ids[seq % len(self.task_ids)]
                write = Write(self.client, seq, task_id, f"chaos-{self.client}-{seq}")
                self.writes.append(write)
                self._send(api, write)

    def _send(self, api: httpx.Client, write: Write) -> None:
        ticket, label = self.tickets[write.seq % len(self.tickets)]
        body = {
            "task_id": write.task_id,
            "inputs": {"ticket": ticket},
            "output": label,
            "score": 0.9,
            "metadata": {"client": write.client, "seq": write.seq},
        }
        headers = {"Idempotency-Key": write.idempotency_key}
        deadline = time.monotonic() + RETRY_BUDGET_SECONDS
        while True:
            status, response = attempt_outcome(
                lambda: api.post("/api/v1/feedback", json=body, headers=headers)
            )
            write.attempts.append(status)
            if status == 201 and response is not None:
                write.feedback_id = str(response.json()["id"])
                return
            if status not in RETRIED or time.monotonic() > deadline:
                return
            time.sleep(backoff(len(write.attempts)))


@dataclass
class OptimizeRequest:
    task_id: str
    attempts: list[int | str] = field(default_factory=list)
    job_id: str | None = None


class OptimizeRequester(threading.Thread):
    """Asks for a job of each of ``task_ids`` every ``interval`` seconds until ``stop`` is set."""

    def __init__(self, api_url: str, key: str, task_ids: list[str], stop: threading.Event, interval: float):
        super().__init__(name="optimize-requester", daemon=True)
        self.api_url, self.key, self.task_ids, self.stop, self.interval = (
            api_url,
            key,
            task_ids,
            stop,
            interval,
        )
        self.requests: list[OptimizeRequest] = []

    def run(self) -> None:
        with httpx.Client(
            base_url=self.api_url, headers={"X-API-Key": self.key}, timeout=REQUEST_TIMEOUT
        ) as api:
            while not self.stop.wait(self.interval):
                for task_id in self.task_ids:
                    self._ask(api, OptimizeRequest(task_id))

    def _ask(self, api: httpx.Client, request: OptimizeRequest) -> None:
        self.requests.append(request)
        deadline = time.monotonic() + RETRY_BUDGET_SECONDS
        while True:
            status, response = attempt_outcome(lambda: api.post(f"/api/v1/optimize/{request.task_id}"))
            request.attempts.append(status)
            if status == 200 and response is not None:
                request.job_id = str(response.json()["job"]["id"])
                return
            # A 504 means "in the log, not decided yet": asking again may find it active (409).
            if status not in RETRIED or time.monotonic() > deadline:
                return
            time.sleep(backoff(len(request.attempts)))


def attempt_counts(writes: list[Write]) -> Counter[int | str]:
    return Counter(status for write in writes for status in write.attempts)
