"""``AsyncKaizen``: the same API for asyncio applications.

``feedback()`` is the same non-blocking call as ``Kaizen.feedback()``: it never awaits,
and its sender runs on its own thread, never on the application's event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from kaizen_client import models as m
from kaizen_client._wire import Call, SseParser, answer, call, client_headers
from kaizen_client.client import (
    BufferedFeedback,
    EventCallback,
    ProgressCallback,
    PromptCache,
    _settings,
    is_uuid,
)
from kaizen_client.errors import ApiError, KaizenError, NotFound, TransportError


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
        url, key = _settings(base_url, api_key)
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

    async def _run(self, request: Call) -> Any:
        try:
            response = await self._http.request(
                request.endpoint.method,
                request.url,
                params=request.params,
                headers=request.headers,
                json=request.json,
                files=request.files,
            )
        except httpx.HTTPError as exc:
            raise TransportError(f"{request.endpoint.method} {request.url}: {exc!r}") from exc
        return answer(request, response)

    async def send_feedback(
        self, item: m.FeedbackCreate, *, idempotency_key: str | None = None
    ) -> m.FeedbackResponse:
        result: m.FeedbackResponse = await self._run(
            call("feedback.record", body=item, params={"Idempotency-Key": idempotency_key})
        )
        return result

    async def send_feedback_batch(
        self, items: list[m.FeedbackCreate], *, idempotency_key: str | None = None
    ) -> m.FeedbackBatchResult:
        request = call(
            "feedback.batch", body=m.FeedbackBatch(items=items), params={"Idempotency-Key": idempotency_key}
        )
        result: m.FeedbackBatchResult = await self._run(request)
        return result

    async def list_feedback(
        self, task_id: uuid.UUID | str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[m.FeedbackResponse]:
        params = {"task_id": task_id, "limit": limit, "offset": offset}
        result: list[m.FeedbackResponse] = await self._run(call("feedback.list", params=params))
        return result

    async def upload_seeds(
        self, task_id: uuid.UUID | str, jsonl: bytes, *, idempotency_key: str | None = None
    ) -> m.SeedUploadResult:
        request = call(
            "seeds.upload",
            path={"task_id": task_id},
            params={"Idempotency-Key": idempotency_key},
            files={"file": ("seeds.jsonl", jsonl, "application/x-ndjson")},
        )
        result: m.SeedUploadResult = await self._run(request)
        return result

    async def optimize(self, task_id: uuid.UUID | str) -> m.OptimizeResponse:
        result: m.OptimizeResponse = await self._run(call("optimize", path={"task_id": task_id}))
        return result

    async def estimate(self, task_id: uuid.UUID | str) -> m.OptimizeEstimate:
        result: m.OptimizeEstimate = await self._run(call("optimize.estimate", path={"task_id": task_id}))
        return result

    async def health(self) -> m.HealthResponse:
        result: m.HealthResponse = await self._run(call("health"))
        return result

    async def livez(self) -> m.HealthStatus:
        result: m.HealthStatus = await self._run(call("livez"))
        return result

    async def readyz(self) -> m.HealthStatus:
        result: m.HealthStatus = await self._run(call("readyz"))
        return result


class AsyncTasks:
    def __init__(self, client: AsyncKaizen) -> None:
        self._c = client

    async def create(self, name: str, **settings: Any) -> m.TaskResponse:
        result: m.TaskResponse = await self._c._run(
            call("tasks.create", body=m.TaskCreate(name=name, **settings))
        )
        return result

    async def list(self, *, limit: int = 50, cursor: str | None = None) -> m.TaskPage:
        result: m.TaskPage = await self._c._run(call("tasks.list", params={"limit": limit, "cursor": cursor}))
        return result

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
        result: m.TaskResponse = await self._c._run(call("tasks.get", path={"task_id": task_id}))
        return result

    async def update(self, task_id: uuid.UUID | str, **changes: Any) -> m.TaskResponse:
        request = call("tasks.update", path={"task_id": task_id}, body=m.TaskUpdate(**changes))
        result: m.TaskResponse = await self._c._run(request)
        return result

    async def delete(self, task_id: uuid.UUID | str) -> None:
        await self._c._run(call("tasks.delete", path={"task_id": task_id}))


class AsyncKeys:
    def __init__(self, client: AsyncKaizen) -> None:
        self._c = client

    async def bootstrap(self, name: str, token: str | None = None) -> m.KeyCreated:
        request = call(
            "keys.bootstrap", body=m.BootstrapCreate(name=name), params={"X-Bootstrap-Token": token}
        )
        result: m.KeyCreated = await self._c._run(request)
        return result

    async def create(self, name: str, role: m.KeyRole) -> m.KeyCreated:
        result: m.KeyCreated = await self._c._run(call("keys.create", body=m.KeyCreate(name=name, role=role)))
        return result

    async def list(self) -> list[m.KeyInfo]:
        result: list[m.KeyInfo] = await self._c._run(call("keys.list"))
        return result

    async def revoke(self, key_id: uuid.UUID | str) -> None:
        await self._c._run(call("keys.revoke", path={"key_id": key_id}))


class AsyncWebhooks:
    """Subscriptions of HTTP receivers to job events (admin keys; docs/webhooks.md)."""

    def __init__(self, client: AsyncKaizen) -> None:
        self._c = client

    async def create(
        self, url: str, *, types: builtins.list[str] | None = None, task_id: uuid.UUID | str | None = None
    ) -> m.WebhookCreated:
        """Subscribe ``url``; the answer's ``secret`` is shown only this once."""
        body = m.WebhookCreate(url=url, types=types, task_id=uuid.UUID(str(task_id)) if task_id else None)
        result: m.WebhookCreated = await self._c._run(call("webhooks.create", body=body))
        return result

    async def list(self) -> builtins.list[m.WebhookInfo]:
        result: builtins.list[m.WebhookInfo] = await self._c._run(call("webhooks.list"))
        return result

    async def get(self, webhook_id: uuid.UUID | str) -> m.WebhookInfo:
        result: m.WebhookInfo = await self._c._run(call("webhooks.get", path={"webhook_id": webhook_id}))
        return result

    async def delete(self, webhook_id: uuid.UUID | str) -> None:
        await self._c._run(call("webhooks.delete", path={"webhook_id": webhook_id}))

    async def deliveries(
        self, webhook_id: uuid.UUID | str, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[m.WebhookDelivery]:
        """The subscription's delivery attempts, newest first (the dead-letter view)."""
        request = call(
            "webhooks.deliveries", path={"webhook_id": webhook_id}, params={"limit": limit, "offset": offset}
        )
        result: builtins.list[m.WebhookDelivery] = await self._c._run(request)
        return result


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
        wanted = name.casefold().strip()
        async for task in self._c.tasks.iter():
            if task.name.casefold().strip() == wanted:
                return str(task.id)
        raise KaizenError(f"no task is named {name!r}")

    async def get(self, task_id: uuid.UUID | str) -> m.PromptVersionResponse:
        result: m.PromptVersionResponse = await self._c._run(
            call("prompts.active", path={"task_id": task_id})
        )
        return result

    async def versions(
        self, task_id: uuid.UUID | str, *, limit: int = 50, offset: int = 0
    ) -> list[m.PromptVersionResponse]:
        request = call(
            "prompts.versions", path={"task_id": task_id}, params={"limit": limit, "offset": offset}
        )
        result: list[m.PromptVersionResponse] = await self._c._run(request)
        return result

    async def register(
        self, task_id: uuid.UUID | str, prompt_text: str, *, activate: bool = True
    ) -> m.PromptVersionResponse:
        body = m.PromptRegistration(prompt_text=prompt_text, activate=activate)
        request = call("prompts.register", path={"task_id": task_id}, body=body)
        result: m.PromptVersionResponse = await self._c._run(request)
        self.cache.clear()
        return result

    async def activate(
        self, task_id: uuid.UUID | str, version_id: uuid.UUID | str
    ) -> m.PromptVersionResponse:
        body = m.ActivateRequest(version_id=uuid.UUID(str(version_id)))
        request = call("prompts.activate", path={"task_id": task_id}, body=body)
        result: m.PromptVersionResponse = await self._c._run(request)
        self.cache.clear()
        return result


class AsyncJobs:
    def __init__(self, client: AsyncKaizen) -> None:
        self._c = client

    async def list(
        self, task_id: uuid.UUID | str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[m.JobResponse]:
        params = {"task_id": task_id, "limit": limit, "offset": offset}
        result: list[m.JobResponse] = await self._c._run(call("jobs.list", params=params))
        return result

    async def get(self, job_id: uuid.UUID | str) -> m.JobResponse:
        result: m.JobResponse = await self._c._run(call("jobs.get", path={"job_id": job_id}))
        return result

    async def retry_pr(self, job_id: uuid.UUID | str) -> m.JobResponse:
        result: m.JobResponse = await self._c._run(call("jobs.retry_pr", path={"job_id": job_id}))
        return result

    async def cancel(self, job_id: uuid.UUID | str) -> m.JobResponse:
        result: m.JobResponse = await self._c._run(call("jobs.cancel", path={"job_id": job_id}))
        return result

    async def events(self, job_id: uuid.UUID | str) -> builtins.list[m.JobEvent]:
        result: builtins.list[m.JobEvent] = await self._c._run(call("jobs.events", path={"job_id": job_id}))
        return result

    async def stream(
        self, job_id: uuid.UUID | str, *, last_event_id: int | None = None
    ) -> AsyncIterator[m.JobEvent]:
        request = call("jobs.stream", path={"job_id": job_id}, params={"Last-Event-ID": last_event_id})
        headers = {**request.headers, "Accept": "text/event-stream"}
        timeout = httpx.Timeout(self._c._http.timeout.connect, read=60.0)
        async with self._c._http.stream("GET", request.url, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                await response.aread()
                answer(request, response)
            parser = SseParser()
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is not None and event.data:
                    yield m.JobEvent.model_validate_json(event.data)

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
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: tuple[str, str | None] | None = None

        async def check() -> m.JobResponse:
            nonlocal seen
            job = await self.get(job_id)
            if on_progress is not None and (job.status, job.progress_step) != seen:
                on_progress(job)
            seen = (job.status, job.progress_step)
            return job

        job = await check()
        last: int | None = None
        streaming = True
        while not job.terminal:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            if streaming:
                try:
                    ended = True
                    async for event in self.stream(job_id, last_event_id=last):
                        last = event.offset
                        if on_event is not None:
                            on_event(event)
                        job = await check()
                        if job.terminal or (deadline is not None and time.monotonic() > deadline):
                            ended = False
                            break
                    if ended:
                        await asyncio.sleep(min(poll_interval, 0.5))
                except NotFound:
                    raise
                except (ApiError, TransportError, httpx.HTTPError, ValueError):
                    streaming = False
            else:
                await asyncio.sleep(poll_interval)
            job = await check()
        return job
