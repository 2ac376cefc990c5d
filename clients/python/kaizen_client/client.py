"""``Kaizen``: the synchronous client.

Every method builds its request with ``kaizen_client._calls`` (the same builders
``AsyncKaizen`` uses) and sends it with an ``httpx.Client``; ``feedback()`` comes from
``kaizen_client._feedback``, which both clients share.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from kaizen_client import _calls as calls
from kaizen_client import models as m
from kaizen_client._feedback import BufferedFeedback, feedback_item
from kaizen_client._follow import (
    STREAM_FAILURES,
    EventCallback,
    EventReader,
    Follow,
    ProgressCallback,
    stream_timeout,
)
from kaizen_client._prompts import PromptCache, is_uuid, named, no_task_named
from kaizen_client._wire import Call, T, answer, client_headers, settings
from kaizen_client.errors import NotFound

# Names this module has always offered, now defined in the modules both clients share.
__all__ = [
    "BufferedFeedback",
    "EventCallback",
    "Jobs",
    "Kaizen",
    "Keys",
    "ProgressCallback",
    "PromptCache",
    "Prompts",
    "Tasks",
    "Webhooks",
    "feedback_item",
    "is_uuid",
]


class Kaizen(BufferedFeedback):
    """The Kaizen API, synchronously. ``Kaizen()`` reads ``KAIZEN_URL`` and ``KAIZEN_API_KEY``.

    Direct calls (``client.tasks.get(...)``) raise typed errors (``kaizen_client.errors``);
    ``client.feedback(...)`` never does.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        buffer_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        retry_for: float = 60.0,
        exit_timeout: float = 5.0,
        prompt_ttl: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url, key = settings(base_url, api_key)
        self._http = httpx.Client(
            base_url=url, headers=client_headers(key), timeout=timeout, transport=transport
        )
        self._init_buffer(
            url,
            key,
            timeout=timeout,
            buffer_size=buffer_size,
            batch_size=batch_size,
            flush_interval=flush_interval,
            retry_for=retry_for,
            exit_timeout=exit_timeout,
            transport=transport,
        )
        self.tasks = Tasks(self)
        self.jobs = Jobs(self)
        self.prompts = Prompts(self, prompt_ttl)
        self.keys = Keys(self)
        self.webhooks = Webhooks(self)

    def __enter__(self) -> Kaizen:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self, timeout: float | None = None) -> bool:
        """Flush the buffer (at most ``timeout`` s, default ``exit_timeout``), then close connections."""
        flushed = self._close_buffer(self._exit_timeout if timeout is None else timeout)
        self._http.close()
        return flushed

    def _run(self, request: Call[T]) -> T:
        try:
            response = self._http.request(**request.arguments())
        except httpx.HTTPError as exc:
            raise request.unreachable(exc) from exc
        return answer(request, response)

    # --- direct calls ------------------------------------------------------------------------

    def send_feedback(
        self, item: m.FeedbackCreate, *, idempotency_key: str | None = None
    ) -> m.FeedbackResponse:
        """Record one item now and wait for it (raises on failure); ``feedback()`` is the non-blocking way."""
        return self._run(calls.feedback_record(item, idempotency_key))

    def send_feedback_batch(
        self, items: list[m.FeedbackCreate], *, idempotency_key: str | None = None
    ) -> m.FeedbackBatchResult:
        return self._run(calls.feedback_batch(items, idempotency_key))

    def list_feedback(
        self, task_id: uuid.UUID | str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[m.FeedbackResponse]:
        return self._run(calls.feedback_list(task_id, limit, offset))

    def upload_seeds(
        self, task_id: uuid.UUID | str, jsonl: bytes, *, idempotency_key: str | None = None
    ) -> m.SeedUploadResult:
        return self._run(calls.seeds_upload(task_id, jsonl, idempotency_key))

    def optimize(self, task_id: uuid.UUID | str) -> m.OptimizeResponse:
        """Start an optimization job now; ``client.jobs.wait(result.job.id)`` follows it."""
        return self._run(calls.optimize(task_id))

    def estimate(self, task_id: uuid.UUID | str) -> m.OptimizeEstimate:
        """What ``optimize(task_id)`` would estimate now, without starting a job (a read key will do)."""
        return self._run(calls.optimize_estimate(task_id))

    def health(self) -> m.HealthResponse:
        return self._run(calls.health())

    def livez(self) -> m.HealthStatus:
        return self._run(calls.livez())

    def readyz(self) -> m.HealthStatus:
        return self._run(calls.readyz())


class Tasks:
    def __init__(self, client: Kaizen) -> None:
        self._c = client

    def create(self, name: str, **settings: Any) -> m.TaskResponse:
        return self._c._run(calls.tasks_create(name, settings))

    def list(self, *, limit: int = 50, cursor: str | None = None) -> m.TaskPage:
        return self._c._run(calls.tasks_list(limit, cursor))

    def iter(self, *, page_size: int = 100) -> Iterator[m.TaskResponse]:
        cursor: str | None = None
        while True:
            page = self.list(limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get(self, task_id: uuid.UUID | str) -> m.TaskResponse:
        return self._c._run(calls.tasks_get(task_id))

    def update(self, task_id: uuid.UUID | str, **changes: Any) -> m.TaskResponse:
        return self._c._run(calls.tasks_update(task_id, changes))

    def delete(self, task_id: uuid.UUID | str) -> None:
        self._c._run(calls.tasks_delete(task_id))


class Keys:
    def __init__(self, client: Kaizen) -> None:
        self._c = client

    def bootstrap(self, name: str, token: str | None = None) -> m.KeyCreated:
        return self._c._run(calls.keys_bootstrap(name, token))

    def create(self, name: str, role: m.KeyRole) -> m.KeyCreated:
        return self._c._run(calls.keys_create(name, role))

    def list(self) -> list[m.KeyInfo]:
        return self._c._run(calls.keys_list())

    def revoke(self, key_id: uuid.UUID | str) -> None:
        self._c._run(calls.keys_revoke(key_id))


class Webhooks:
    """Subscriptions of HTTP receivers to job events (admin keys; docs/webhooks.md)."""

    def __init__(self, client: Kaizen) -> None:
        self._c = client

    def create(
        self, url: str, *, types: builtins.list[str] | None = None, task_id: uuid.UUID | str | None = None
    ) -> m.WebhookCreated:
        """Subscribe ``url``; the answer's ``secret`` is shown only this once."""
        return self._c._run(calls.webhooks_create(url, types, task_id))

    def list(self) -> list[m.WebhookInfo]:
        return self._c._run(calls.webhooks_list())

    def get(self, webhook_id: uuid.UUID | str) -> m.WebhookInfo:
        return self._c._run(calls.webhooks_get(webhook_id))

    def delete(self, webhook_id: uuid.UUID | str) -> None:
        self._c._run(calls.webhooks_delete(webhook_id))

    def deliveries(
        self, webhook_id: uuid.UUID | str, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[m.WebhookDelivery]:
        """The subscription's delivery attempts, newest first (the dead-letter view)."""
        return self._c._run(calls.webhooks_deliveries(webhook_id, limit, offset))


class Prompts:
    def __init__(self, client: Kaizen, ttl: float) -> None:
        self._c = client
        self.cache = PromptCache(ttl)

    def active(self, task: uuid.UUID | str) -> str:
        """The task's active prompt text, as the application runs it under the task's contract.

        ``task`` is an id or a task name. Cached for the client's ``prompt_ttl`` seconds.
        """
        key = str(task)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        task_id = key if is_uuid(key) else self._task_id(key)
        return self.cache.put(key, self.get(task_id).prompt_text)

    def _task_id(self, name: str) -> str:
        for task in self._c.tasks.iter():
            if named(task.name, name):
                return str(task.id)
        raise no_task_named(name)

    def get(self, task_id: uuid.UUID | str) -> m.PromptVersionResponse:
        return self._c._run(calls.prompts_active(task_id))

    def versions(
        self, task_id: uuid.UUID | str, *, limit: int = 50, offset: int = 0
    ) -> list[m.PromptVersionResponse]:
        return self._c._run(calls.prompts_versions(task_id, limit, offset))

    def register(
        self, task_id: uuid.UUID | str, prompt_text: str, *, activate: bool = True
    ) -> m.PromptVersionResponse:
        result = self._c._run(calls.prompts_register(task_id, prompt_text, activate))
        self.cache.clear()
        return result

    def activate(self, task_id: uuid.UUID | str, version_id: uuid.UUID | str) -> m.PromptVersionResponse:
        result = self._c._run(calls.prompts_activate(task_id, version_id))
        self.cache.clear()
        return result


class Jobs:
    def __init__(self, client: Kaizen) -> None:
        self._c = client

    def list(
        self, task_id: uuid.UUID | str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[m.JobResponse]:
        return self._c._run(calls.jobs_list(task_id, limit, offset))

    def get(self, job_id: uuid.UUID | str) -> m.JobResponse:
        return self._c._run(calls.jobs_get(job_id))

    def retry_pr(self, job_id: uuid.UUID | str) -> m.JobResponse:
        return self._c._run(calls.jobs_retry_pr(job_id))

    def cancel(self, job_id: uuid.UUID | str) -> m.JobResponse:
        return self._c._run(calls.jobs_cancel(job_id))

    def events(self, job_id: uuid.UUID | str) -> builtins.list[m.JobEvent]:
        return self._c._run(calls.jobs_events(job_id))

    def stream(self, job_id: uuid.UUID | str, *, last_event_id: int | None = None) -> Iterator[m.JobEvent]:
        """The job's events as they happen (Server-Sent Events); ends with the job."""
        request = calls.jobs_stream(job_id, last_event_id)
        http = self._c._http
        timeout = stream_timeout(http.timeout)
        with http.stream(
            request.endpoint.method, request.url, headers=request.headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                answer(request, response)
            reader = EventReader()
            for line in response.iter_lines():
                event = reader.feed(line)
                if event is not None:
                    yield event

    def wait(
        self,
        job_id: uuid.UUID | str,
        *,
        on_progress: ProgressCallback | None = None,
        on_event: EventCallback | None = None,
        timeout: float | None = None,
        poll_interval: float = 1.0,
    ) -> m.JobResponse:
        """Follow the job until ``SUCCESS``, ``FAILED`` or ``PR_FAILED`` and return it.

        Follows the SSE stream; when the stream cannot be used (a proxy that buffers, a
        broken connection) it falls back to polling ``GET /jobs/{id}``. ``on_progress``
        gets the job each time its status or step changes; ``on_event`` every raw event.
        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        follow = Follow(job_id, on_progress, on_event, timeout)
        job = follow.checked(self.get(job_id))
        while not job.terminal:
            follow.check_deadline(job)
            if follow.streaming:
                try:
                    for event in self.stream(job_id, last_event_id=follow.last):
                        follow.event(event)
                        job = follow.checked(self.get(job_id))
                        if follow.done(job):
                            break
                    else:
                        time.sleep(min(poll_interval, 0.5))  # the stream ended early: reconnect
                except NotFound:
                    raise
                except STREAM_FAILURES:
                    follow.streaming = False  # fall back to polling
            else:
                time.sleep(poll_interval)
            job = follow.checked(self.get(job_id))
        return job
