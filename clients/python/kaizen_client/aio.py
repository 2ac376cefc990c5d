"""``AsyncKaizen``: the same API for asyncio applications.

Every method builds its request with ``kaizen_client._calls``, as ``Kaizen`` does, and
sends it with an ``httpx.AsyncClient``. ``feedback()`` is the same non-blocking call as
``Kaizen.feedback()``: it never awaits, and its sender runs on its own thread, never on
the application's event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from kaizen_client import _calls as calls
from kaizen_client import models as m
from kaizen_client._feedback import BufferedFeedback
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


class AsyncKaizen(BufferedFeedback):
    """The Kaizen API for asyncio; ``async with AsyncKaizen() as client: ...``."""

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
        transport: httpx.AsyncBaseTransport | None = None,
        sender_transport: httpx.BaseTransport | None = None,
    ) -> None:
        url, key = settings(base_url, api_key)
        self._http = httpx.AsyncClient(
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
            transport=sender_transport,
        )
        self.tasks = AsyncTasks(self)
        self.jobs = AsyncJobs(self)
        self.prompts = AsyncPrompts(self, prompt_ttl)
        self.keys = AsyncKeys(self)
        self.webhooks = AsyncWebhooks(self)

    async def __aenter__(self) -> AsyncKaizen:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aflush(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """``flush()`` without blocking the event loop."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        flushed = await asyncio.to_thread(
            self._close_buffer, self._exit_timeout if timeout is None else timeout
        )
        await self._http.aclose()
        return flushed

    async def _run(self, request: Call[T]) -> T:
        try:
            response = await self._http.request(**request.arguments())
        except httpx.HTTPError as exc:
            raise request.unreachable(exc) from exc
        return answer(request, response)

    async def send_feedback(
        self, item: m.FeedbackCreate, *, idempotency_key: str | None = None
    ) -> m.FeedbackResponse:
        return await self._run(calls.feedback_record(item, idempotency_key))

    async def send_feedback_batch(
        self, items: list[m.FeedbackCreate], *, idempotency_key: str | None = None
    ) -> m.FeedbackBatchResult:
        return await self._run(calls.feedback_batch(items, idempotency_key))

    async def list_feedback(
        self, task_id: uuid.UUID | str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[m.FeedbackResponse]:
        return await self._run(calls.feedback_list(task_id, limit, offset))

    async def upload_seeds(
        self, task_id: uuid.UUID | str, jsonl: bytes, *, idempotency_key: str | None = None
    ) -> m.SeedUploadResult:
        return await self._run(calls.seeds_upload(task_id, jsonl, idempotency_key))

    async def optimize(self, task_id: uuid.UUID | str) -> m.OptimizeResponse:
        return await self._run(calls.optimize(task_id))

    async def estimate(self, task_id: uuid.UUID | str) -> m.OptimizeEstimate:
        return await self._run(calls.optimize_estimate(task_id))

    async def health(self) -> m.HealthResponse:
        return await self._run(calls.health())

    async def livez(self) -> m.HealthStatus:
        return await self._run(calls.livez())

    async def readyz(self) -> m.HealthStatus:
        return await self._run(calls.readyz())


class AsyncTasks:
    def __init__(self, client: AsyncKaizen) -> None:
        self._c = client

    async def create(self, name: str, **settings: Any) -> m.TaskResponse:
        return await self._c._run(calls.tasks_create(name, settings))

    async def list(self, *, limit: int = 50, cursor: str | None = None) -> m.TaskPage:
        return await self._c._run(calls.tasks_list(limit, cursor))

    async def iter(self, *, page_size: int = 100) -> AsyncIterator[m.TaskResponse]:
        cursor: str | None = None
        while True:
            page = await self.list(limit=page_size, cursor=cursor)
            for task in page.items:
                yield task
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get(self, task_id: uuid.UUID | str) -> m.TaskResponse:
        return await self._c._run(calls.tasks_get(task_id))

    async def update(self, task_id: uuid.UUID | str, **changes: Any) -> m.TaskResponse:
        return await self._c._run(calls.tasks_update(task_id, changes))

    async def delete(self, task_id: uuid.UUID | str) -> None:
        await self._c._run(calls.tasks_delete(task_id))


class AsyncKeys:
    def __init__(self, client: AsyncKaizen) -> None:
        self._c = client

    async def bootstrap(self, name: str, token: str | None = None) -> m.KeyCreated:
        return await self._c._run(calls.keys_bootstrap(name, token))

    async def create(self, name: str, role: m.KeyRole) -> m.KeyCreated:
        return await self._c._run(calls.keys_create(name, role))

    async def list(self) -> list[m.KeyInfo]:
        return await self._c._run(calls.keys_list())

    async def revoke(self, key_id: uuid.UUID | str) -> None:
        await self._c._run(calls.keys_revoke(key_id))


class AsyncWebhooks:
    """Subscriptions of HTTP receivers to job events (admin keys; docs/webhooks.md)."""

    def __init__(self, client: AsyncKaizen) -> None:
        self._c = client

    async def create(
        self, url: str, *, types: builtins.list[str] | None = None, task_id: uuid.UUID | str | None = None
    ) -> m.WebhookCreated:
        """Subscribe ``url``; the answer's ``secret`` is shown only this once."""
        return await self._c._run(calls.webhooks_create(url, types, task_id))

    async def list(self) -> builtins.list[m.WebhookInfo]:
        return await self._c._run(calls.webhooks_list())

    async def get(self, webhook_id: uuid.UUID | str) -> m.WebhookInfo:
        return await self._c._run(calls.webhooks_get(webhook_id))

    async def delete(self, webhook_id: uuid.UUID | str) -> None:
        await self._c._run(calls.webhooks_delete(webhook_id))

    async def deliveries(
        self, webhook_id: uuid.UUID | str, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[m.WebhookDelivery]:
        """The subscription's delivery attempts, newest first (the dead-letter view)."""
        return await self._c._run(calls.webhooks_deliveries(webhook_id, limit, offset))


class AsyncPrompts:
    def __init__(self, client: AsyncKaizen, ttl: float) -> None:
        self._c = client
        self.cache = PromptCache(ttl)

    async def active(self, task: uuid.UUID | str) -> str:
        """The task's active prompt text (by id or name), cached for ``prompt_ttl`` seconds."""
        key = str(task)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        task_id = key if is_uuid(key) else await self._task_id(key)
        return self.cache.put(key, (await self.get(task_id)).prompt_text)

    async def _task_id(self, name: str) -> str:
        async for task in self._c.tasks.iter():
            if named(task.name, name):
                return str(task.id)
        raise no_task_named(name)

    async def get(self, task_id: uuid.UUID | str) -> m.PromptVersionResponse:
        return await self._c._run(calls.prompts_active(task_id))

    async def versions(
        self, task_id: uuid.UUID | str, *, limit: int = 50, offset: int = 0
    ) -> list[m.PromptVersionResponse]:
        return await self._c._run(calls.prompts_versions(task_id, limit, offset))

    async def register(
        self, task_id: uuid.UUID | str, prompt_text: str, *, activate: bool = True
    ) -> m.PromptVersionResponse:
        result = await self._c._run(calls.prompts_register(task_id, prompt_text, activate))
        self.cache.clear()
        return result

    async def activate(
        self, task_id: uuid.UUID | str, version_id: uuid.UUID | str
    ) -> m.PromptVersionResponse:
        result = await self._c._run(calls.prompts_activate(task_id, version_id))
        self.cache.clear()
        return result


class AsyncJobs:
    def __init__(self, client: AsyncKaizen) -> None:
        self._c = client

    async def list(
        self, task_id: uuid.UUID | str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[m.JobResponse]:
        return await self._c._run(calls.jobs_list(task_id, limit, offset))

    async def get(self, job_id: uuid.UUID | str) -> m.JobResponse:
        return await self._c._run(calls.jobs_get(job_id))

    async def retry_pr(self, job_id: uuid.UUID | str) -> m.JobResponse:
        return await self._c._run(calls.jobs_retry_pr(job_id))

    async def cancel(self, job_id: uuid.UUID | str) -> m.JobResponse:
        return await self._c._run(calls.jobs_cancel(job_id))

    async def events(self, job_id: uuid.UUID | str) -> builtins.list[m.JobEvent]:
        return await self._c._run(calls.jobs_events(job_id))

    async def stream(
        self, job_id: uuid.UUID | str, *, last_event_id: int | None = None
    ) -> AsyncIterator[m.JobEvent]:
        request = calls.jobs_stream(job_id, last_event_id)
        http = self._c._http
        timeout = stream_timeout(http.timeout)
        async with http.stream(
            request.endpoint.method, request.url, headers=request.headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                answer(request, response)
            reader = EventReader()
            async for line in response.aiter_lines():
                event = reader.feed(line)
                if event is not None:
                    yield event

    async def wait(
        self,
        job_id: uuid.UUID | str,
        *,
        on_progress: ProgressCallback | None = None,
        on_event: EventCallback | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        poll_interval: float = 1.0,
    ) -> m.JobResponse:
        """Like ``Kaizen.jobs.wait``: SSE first, polling as the fallback; returns the terminal job."""
        follow = Follow(job_id, on_progress, on_event, timeout)
        job = follow.checked(await self.get(job_id))
        while not job.terminal:
            follow.check_deadline(job)
            if follow.streaming:
                try:
                    ended = True
                    async for event in self.stream(job_id, last_event_id=follow.last):
                        follow.event(event)
                        job = follow.checked(await self.get(job_id))
                        if follow.done(job):
                            ended = False
                            break
                    if ended:
                        await asyncio.sleep(min(poll_interval, 0.5))
                except NotFound:
                    raise
                except STREAM_FAILURES:
                    follow.streaming = False
            else:
                await asyncio.sleep(poll_interval)
            job = follow.checked(await self.get(job_id))
        return job
