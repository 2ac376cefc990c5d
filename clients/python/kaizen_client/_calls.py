"""Each client method's request, described once: both clients send these and nothing else.

A builder turns a method's arguments into a ``Call`` whose type says what its answer reads
as; ``Kaizen`` and ``AsyncKaizen`` differ only in how they send it (``httpx.Client`` or
``httpx.AsyncClient``), so the two cannot drift apart on a path, a body or a parameter.
Named after the ``kaizen_client.endpoints`` entry each one builds.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from kaizen_client import models as m
from kaizen_client._wire import Call, call
from kaizen_client.endpoints import IDEMPOTENCY

Id = uuid.UUID | str


def health() -> Call[m.HealthResponse]:
    return call("health")


def livez() -> Call[m.HealthStatus]:
    return call("livez")


def readyz() -> Call[m.HealthStatus]:
    return call("readyz")


def feedback_record(item: m.FeedbackCreate, idempotency_key: str | None) -> Call[m.FeedbackResponse]:
    return call("feedback.record", body=item, params={IDEMPOTENCY: idempotency_key})


def feedback_batch(items: list[m.FeedbackCreate], idempotency_key: str | None) -> Call[m.FeedbackBatchResult]:
    return call("feedback.batch", body=m.FeedbackBatch(items=items), params={IDEMPOTENCY: idempotency_key})


def feedback_list(task_id: Id | None, limit: int, offset: int) -> Call[list[m.FeedbackResponse]]:
    return call("feedback.list", params={"task_id": task_id, "limit": limit, "offset": offset})


def seeds_upload(task_id: Id, jsonl: bytes, idempotency_key: str | None) -> Call[m.SeedUploadResult]:
    return call(
        "seeds.upload",
        path={"task_id": task_id},
        params={IDEMPOTENCY: idempotency_key},
        files={"file": ("seeds.jsonl", jsonl, "application/x-ndjson")},
    )


def optimize(task_id: Id) -> Call[m.OptimizeResponse]:
    return call("optimize", path={"task_id": task_id})


def optimize_estimate(task_id: Id) -> Call[m.OptimizeEstimate]:
    return call("optimize.estimate", path={"task_id": task_id})


def tasks_create(name: str, settings: dict[str, Any]) -> Call[m.TaskResponse]:
    return call("tasks.create", body=m.TaskCreate(name=name, **settings))


def tasks_list(limit: int, cursor: str | None) -> Call[m.TaskPage]:
    return call("tasks.list", params={"limit": limit, "cursor": cursor})


def tasks_get(task_id: Id) -> Call[m.TaskResponse]:
    return call("tasks.get", path={"task_id": task_id})


def tasks_update(task_id: Id, changes: dict[str, Any]) -> Call[m.TaskResponse]:
    return call("tasks.update", path={"task_id": task_id}, body=m.TaskUpdate(**changes))


def tasks_delete(task_id: Id) -> Call[None]:
    return call("tasks.delete", path={"task_id": task_id})


def keys_bootstrap(name: str, token: str | None) -> Call[m.KeyCreated]:
    return call("keys.bootstrap", body=m.BootstrapCreate(name=name), params={"X-Bootstrap-Token": token})


def keys_create(name: str, role: m.KeyRole) -> Call[m.KeyCreated]:
    return call("keys.create", body=m.KeyCreate(name=name, role=role))


def keys_list() -> Call[list[m.KeyInfo]]:
    return call("keys.list")


def keys_revoke(key_id: Id) -> Call[None]:
    return call("keys.revoke", path={"key_id": key_id})


def webhooks_create(url: str, types: list[str] | None, task_id: Id | None) -> Call[m.WebhookCreated]:
    body = m.WebhookCreate(url=url, types=types, task_id=uuid.UUID(str(task_id)) if task_id else None)
    return call("webhooks.create", body=body)


def webhooks_list() -> Call[list[m.WebhookInfo]]:
    return call("webhooks.list")


def webhooks_get(webhook_id: Id) -> Call[m.WebhookInfo]:
    return call("webhooks.get", path={"webhook_id": webhook_id})


def webhooks_delete(webhook_id: Id) -> Call[None]:
    return call("webhooks.delete", path={"webhook_id": webhook_id})


def webhooks_deliveries(webhook_id: Id, limit: int, offset: int) -> Call[list[m.WebhookDelivery]]:
    params = {"limit": limit, "offset": offset}
    return call("webhooks.deliveries", path={"webhook_id": webhook_id}, params=params)


def prompts_active(task_id: Id) -> Call[m.PromptVersionResponse]:
    return call("prompts.active", path={"task_id": task_id})


def prompts_versions(task_id: Id, limit: int, offset: int) -> Call[list[m.PromptVersionResponse]]:
    return call("prompts.versions", path={"task_id": task_id}, params={"limit": limit, "offset": offset})


def prompts_register(task_id: Id, prompt_text: str, activate: bool) -> Call[m.PromptVersionResponse]:
    body = m.PromptRegistration(prompt_text=prompt_text, activate=activate)
    return call("prompts.register", path={"task_id": task_id}, body=body)


def prompts_activate(task_id: Id, version_id: Id) -> Call[m.PromptVersionResponse]:
    body = m.ActivateRequest(version_id=uuid.UUID(str(version_id)))
    return call("prompts.activate", path={"task_id": task_id}, body=body)


def jobs_list(task_id: Id | None, limit: int, offset: int) -> Call[list[m.JobResponse]]:
    return call("jobs.list", params={"task_id": task_id, "limit": limit, "offset": offset})


def jobs_get(job_id: Id) -> Call[m.JobResponse]:
    return call("jobs.get", path={"job_id": job_id})


def jobs_retry_pr(job_id: Id) -> Call[m.JobResponse]:
    return call("jobs.retry_pr", path={"job_id": job_id})


def jobs_cancel(job_id: Id) -> Call[m.JobResponse]:
    return call("jobs.cancel", path={"job_id": job_id})


def jobs_events(job_id: Id) -> Call[list[m.JobEvent]]:
    return call("jobs.events", path={"job_id": job_id})


def jobs_stream(job_id: Id, last_event_id: int | None) -> Call[None]:
    """The SSE request; its events are read line by line (``kaizen_client._follow``), not as one answer."""
    request: Call[None] = call(
        "jobs.stream", path={"job_id": job_id}, params={"Last-Event-ID": last_event_id}
    )
    return dataclasses.replace(request, headers={**request.headers, "Accept": "text/event-stream"})
