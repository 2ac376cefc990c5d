"""``Kaizen``: the synchronous client, and the non-blocking ``feedback()`` every client shares."""

from __future__ import annotations

import atexit
import builtins
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from kaizen_client import models as m
from kaizen_client._wire import Call, SseParser, answer, call, client_headers
from kaizen_client.buffer import FeedbackBuffer, Stats
from kaizen_client.errors import ApiError, KaizenError, NotFound, TransportError

ProgressCallback = Callable[[m.JobResponse], None]
EventCallback = Callable[[m.JobEvent], None]


def _settings(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    url = base_url or os.environ.get("KAIZEN_URL") or "http://127.0.0.1:8000"
    return url.rstrip("/"), api_key or os.environ.get("KAIZEN_API_KEY")


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
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        return self._sender_http.post("/api/v1/feedback/batch", content=body, headers=headers)

    def _close_buffer(self, timeout: float) -> bool:
        atexit.unregister(self._at_exit)
        flushed = self._buffer.close(timeout)
        if self._sender_http is not None:
            self._sender_http.close()
        return flushed

    def _at_exit(self) -> None:
        self._buffer.close(self._exit_timeout)


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
        url, key = _settings(base_url, api_key)
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

    def _run(self, request: Call) -> Any:
        try:
            response = self._http.request(
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

    # --- direct calls ------------------------------------------------------------------------

    def send_feedback(
        self, item: m.FeedbackCreate, *, idempotency_key: str | None = None
    ) -> m.FeedbackResponse:
        """Record one item now and wait for it (raises on failure); ``feedback()`` is the non-blocking way."""
        result: m.FeedbackResponse = self._run(
            call("feedback.record", body=item, params={"Idempotency-Key": idempotency_key})
        )
        return result

    def send_feedback_batch(
        self, items: list[m.FeedbackCreate], *, idempotency_key: str | None = None
    ) -> m.FeedbackBatchResult:
        body = m.FeedbackBatch(items=items)
        result: m.FeedbackBatchResult = self._run(
            call("feedback.batch", body=body, params={"Idempotency-Key": idempotency_key})
        )
        return result

    def list_feedback(
        self, task_id: uuid.UUID | str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[m.FeedbackResponse]:
        params = {"task_id": task_id, "limit": limit, "offset": offset}
        result: list[m.FeedbackResponse] = self._run(call("feedback.list", params=params))
        return result

    def upload_seeds(
        self, task_id: uuid.UUID | str, jsonl: bytes, *, idempotency_key: str | None = None
    ) -> m.SeedUploadResult:
        request = call(
            "seeds.upload",
            path={"task_id": task_id},
            params={"Idempotency-Key": idempotency_key},
            files={"file": ("seeds.jsonl", jsonl, "application/x-ndjson")},
        )
        result: m.SeedUploadResult = self._run(request)
        return result

    def optimize(self, task_id: uuid.UUID | str) -> m.OptimizeResponse:
        """Start an optimization job now; ``client.jobs.wait(result.job.id)`` follows it."""
        result: m.OptimizeResponse = self._run(call("optimize", path={"task_id": task_id}))
        return result

    def estimate(self, task_id: uuid.UUID | str) -> m.OptimizeEstimate:
        """What ``optimize(task_id)`` would estimate now, without starting a job (a read key will do)."""
        result: m.OptimizeEstimate = self._run(call("optimize.estimate", path={"task_id": task_id}))
        return result

    def health(self) -> m.HealthResponse:
        result: m.HealthResponse = self._run(call("health"))
        return result

    def livez(self) -> m.HealthStatus:
        result: m.HealthStatus = self._run(call("livez"))
        return result

    def readyz(self) -> m.HealthStatus:
        result: m.HealthStatus = self._run(call("readyz"))
        return result


class Tasks:
    def __init__(self, client: Kaizen) -> None:
        self._c = client

    def create(self, name: str, **settings: Any) -> m.TaskResponse:
        result: m.TaskResponse = self._c._run(call("tasks.create", body=m.TaskCreate(name=name, **settings)))
        return result

    def list(self, *, limit: int = 50, cursor: str | None = None) -> m.TaskPage:
        result: m.TaskPage = self._c._run(call("tasks.list", params={"limit": limit, "cursor": cursor}))
        return result

    def iter(self, *, page_size: int = 100) -> Iterator[m.TaskResponse]:
        cursor: str | None = None
        while True:
            page = self.list(limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get(self, task_id: uuid.UUID | str) -> m.TaskResponse:
        result: m.TaskResponse = self._c._run(call("tasks.get", path={"task_id": task_id}))
        return result

    def update(self, task_id: uuid.UUID | str, **changes: Any) -> m.TaskResponse:
        body = m.TaskUpdate(**changes)
        result: m.TaskResponse = self._c._run(call("tasks.update", path={"task_id": task_id}, body=body))
        return result

    def delete(self, task_id: uuid.UUID | str) -> None:
        self._c._run(call("tasks.delete", path={"task_id": task_id}))


class Keys:
    def __init__(self, client: Kaizen) -> None:
        self._c = client

    def bootstrap(self, name: str, token: str | None = None) -> m.KeyCreated:
        params = {"X-Bootstrap-Token": token}
        result: m.KeyCreated = self._c._run(
            call("keys.bootstrap", body=m.BootstrapCreate(name=name), params=params)
        )
        return result

    def create(self, name: str, role: m.KeyRole) -> m.KeyCreated:
        result: m.KeyCreated = self._c._run(call("keys.create", body=m.KeyCreate(name=name, role=role)))
        return result

    def list(self) -> list[m.KeyInfo]:
        result: list[m.KeyInfo] = self._c._run(call("keys.list"))
        return result

    def revoke(self, key_id: uuid.UUID | str) -> None:
        self._c._run(call("keys.revoke", path={"key_id": key_id}))


class Webhooks:
    """Subscriptions of HTTP receivers to job events (admin keys; docs/webhooks.md)."""

    def __init__(self, client: Kaizen) -> None:
        self._c = client

    def create(
        self, url: str, *, types: builtins.list[str] | None = None, task_id: uuid.UUID | str | None = None
    ) -> m.WebhookCreated:
        """Subscribe ``url``; the answer's ``secret`` is shown only this once."""
        body = m.WebhookCreate(url=url, types=types, task_id=uuid.UUID(str(task_id)) if task_id else None)
        result: m.WebhookCreated = self._c._run(call("webhooks.create", body=body))
        return result

    def list(self) -> list[m.WebhookInfo]:
        result: list[m.WebhookInfo] = self._c._run(call("webhooks.list"))
        return result

    def get(self, webhook_id: uuid.UUID | str) -> m.WebhookInfo:
        result: m.WebhookInfo = self._c._run(call("webhooks.get", path={"webhook_id": webhook_id}))
        return result

    def delete(self, webhook_id: uuid.UUID | str) -> None:
        self._c._run(call("webhooks.delete", path={"webhook_id": webhook_id}))

    def deliveries(
        self, webhook_id: uuid.UUID | str, *, limit: int = 50, offset: int = 0
    ) -> builtins.list[m.WebhookDelivery]:
        """The subscription's delivery attempts, newest first (the dead-letter view)."""
        request = call(
            "webhooks.deliveries", path={"webhook_id": webhook_id}, params={"limit": limit, "offset": offset}
        )
        result: builtins.list[m.WebhookDelivery] = self._c._run(request)
        return result


class PromptCache:
    """Active prompt texts by task, each kept ``ttl`` seconds (shared by both clients)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._texts: dict[str, tuple[float, str]] = {}
        self._task_ids: dict[str, str] = {}

    def get(self, task: str) -> str | None:
        hit = self._texts.get(task)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.ttl else None

    def put(self, task: str, text: str) -> str:
        self._texts[task] = (time.monotonic(), text)
        return text

    def clear(self) -> None:
        self._texts.clear()


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


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
        wanted = name.casefold().strip()
        for task in self._c.tasks.iter():
            if task.name.casefold().strip() == wanted:
                return str(task.id)
        raise KaizenError(f"no task is named {name!r}")

    def get(self, task_id: uuid.UUID | str) -> m.PromptVersionResponse:
        result: m.PromptVersionResponse = self._c._run(call("prompts.active", path={"task_id": task_id}))
        return result

    def versions(
        self, task_id: uuid.UUID | str, *, limit: int = 50, offset: int = 0
    ) -> list[m.PromptVersionResponse]:
        request = call(
            "prompts.versions", path={"task_id": task_id}, params={"limit": limit, "offset": offset}
        )
        result: list[m.PromptVersionResponse] = self._c._run(request)
        return result

    def register(
        self, task_id: uuid.UUID | str, prompt_text: str, *, activate: bool = True
    ) -> m.PromptVersionResponse:
        body = m.PromptRegistration(prompt_text=prompt_text, activate=activate)
        result: m.PromptVersionResponse = self._c._run(
            call("prompts.register", path={"task_id": task_id}, body=body)
        )
        self.cache.clear()
        return result

    def activate(self, task_id: uuid.UUID | str, version_id: uuid.UUID | str) -> m.PromptVersionResponse:
        body = m.ActivateRequest(version_id=uuid.UUID(str(version_id)))
        result: m.PromptVersionResponse = self._c._run(
            call("prompts.activate", path={"task_id": task_id}, body=body)
        )
        self.cache.clear()
        return result


class Jobs:
    def __init__(self, client: Kaizen) -> None:
        self._c = client

    def list(
        self, task_id: uuid.UUID | str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[m.JobResponse]:
        params = {"task_id": task_id, "limit": limit, "offset": offset}
        result: list[m.JobResponse] = self._c._run(call("jobs.list", params=params))
        return result

    def get(self, job_id: uuid.UUID | str) -> m.JobResponse:
        result: m.JobResponse = self._c._run(call("jobs.get", path={"job_id": job_id}))
        return result

    def retry_pr(self, job_id: uuid.UUID | str) -> m.JobResponse:
        result: m.JobResponse = self._c._run(call("jobs.retry_pr", path={"job_id": job_id}))
        return result

    def cancel(self, job_id: uuid.UUID | str) -> m.JobResponse:
        result: m.JobResponse = self._c._run(call("jobs.cancel", path={"job_id": job_id}))
        return result

    def events(self, job_id: uuid.UUID | str) -> builtins.list[m.JobEvent]:
        result: builtins.list[m.JobEvent] = self._c._run(call("jobs.events", path={"job_id": job_id}))
        return result

    def stream(self, job_id: uuid.UUID | str, *, last_event_id: int | None = None) -> Iterator[m.JobEvent]:
        """The job's events as they happen (Server-Sent Events); ends with the job."""
        request = call("jobs.stream", path={"job_id": job_id}, params={"Last-Event-ID": last_event_id})
        headers = {**request.headers, "Accept": "text/event-stream"}
        timeout = httpx.Timeout(self._c._http.timeout.connect, read=60.0)
        with self._c._http.stream("GET", request.url, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                answer(request, response)
            parser = SseParser()
            for line in response.iter_lines():
                event = parser.feed(line)
                if event is not None and event.data:
                    yield m.JobEvent.model_validate_json(event.data)

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
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: tuple[str, str | None] | None = None

        def check() -> m.JobResponse:
            nonlocal seen
            job = self.get(job_id)
            if on_progress is not None and (job.status, job.progress_step) != seen:
                on_progress(job)
            seen = (job.status, job.progress_step)
            return job

        job = check()
        last: int | None = None
        streaming = True
        while not job.terminal:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            if streaming:
                try:
                    for event in self.stream(job_id, last_event_id=last):
                        last = event.offset
                        if on_event is not None:
                            on_event(event)
                        job = check()
                        if job.terminal or (deadline is not None and time.monotonic() > deadline):
                            break
                    else:
                        time.sleep(min(poll_interval, 0.5))  # the stream ended early: reconnect
                except NotFound:
                    raise
                except (ApiError, TransportError, httpx.HTTPError, ValueError):
                    streaming = False  # fall back to polling
            else:
                time.sleep(poll_interval)
            job = check()
        return job
