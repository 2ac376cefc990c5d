"""Webhook subscriptions and their delivery attempts. The secret is shown once, when created."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.schemas.common import UtcDateTime
from shared.events.webhooks import MAX_URL_LENGTH

#: At most this many types in a filter (there are fewer job event types than that).
MAX_TYPES = 32


class WebhookCreate(BaseModel):
    """A subscription: where to post, and optionally which job events."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where events are posted. Its origin must be listed in KAIZEN_WEBHOOK_HOSTS; "
        "https unless an http origin is listed.",
        examples=["https://hooks.example.com/kaizen"],
    )
    types: list[str] | None = Field(
        None,
        max_length=MAX_TYPES,
        description="Only these CloudEvents types (the job, PR and prompt events of a job); "
        "omitted or empty: every job event.",
        examples=[["kaizen.job.succeeded.v1", "kaizen.job.failed.v1"]],
    )
    task_id: uuid.UUID | None = Field(None, description="Only this task's job events; omitted: every task.")


class WebhookInfo(BaseModel):
    """A subscription without its secret."""

    id: uuid.UUID
    url: str
    types: list[str]
    task_id: uuid.UUID | None
    created_at: UtcDateTime

    @classmethod
    def from_row(cls, row: Any) -> WebhookInfo:
        return cls(
            id=row.id,
            url=row.url,
            types=list(row.type_filter),
            task_id=row.task_filter,
            created_at=row.created_at,
        )


class WebhookCreated(WebhookInfo):
    """A new subscription. ``secret`` is shown only here: store it now, it cannot be read again."""

    secret: str = Field(
        description="The signing secret (Standard Webhooks: `whsec_` + base64); "
        "verify `webhook-signature` with it.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookDelivery(BaseModel):
    """One delivery attempt of a job event to a subscription."""

    id: uuid.UUID = Field(description="The attempt's own event id.")
    event_id: uuid.UUID = Field(description="The delivered event's id (its `webhook-id`).")
    event_type: str
    task_id: uuid.UUID
    job_id: uuid.UUID | None
    attempt: int
    outcome: Literal["delivered", "retrying", "dead"]
    status_code: int | None = Field(description="The receiver's HTTP status; null when it did not answer.")
    error: str | None
    response_snippet: str | None = Field(description="The start of the receiver's answer (redacted).")
    duration_ms: float
    retry_in_seconds: float | None
    attempted_at: UtcDateTime

    @classmethod
    def from_row(cls, row: Any) -> WebhookDelivery:
        return cls.model_validate({name: getattr(row, name) for name in cls.model_fields})
