"""Webhook events: subscriptions (keys topic) and delivery attempts (task topic).

A subscription is configuration an admin changes, like an API key: it lives on the
single-partition keys topic, so every consumer folds subscriptions in one order. A
delivery attempt concerns one job event of one task: it is keyed by that task, beside
the event it delivered. The signing secret never appears in clear: only its Fernet
ciphertext (the installation's ``KAIZEN_SECRET_KEY``, as for Git tokens) is in the log.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared.events import jobs, prompts, prs
from shared.events.base import Event

#: The event types webhooks deliver ("job events"): every job, PR and prompt event that
#: names a job, i.e. what a job's history (``GET /api/v1/jobs/{id}/events``) shows.
JOB_EVENT_TYPES: frozenset[str] = frozenset(
    cls.TYPE
    for module in (jobs, prs, prompts)
    for cls in vars(module).values()
    if isinstance(cls, type)
    and issubclass(cls, Event)
    and "TYPE" in cls.__dict__
    and "job_id" in cls.model_fields
)

#: What happened to one attempt: the receiver took it, it will be tried again, or never again.
DeliveryOutcome = Literal["delivered", "retrying", "dead"]
MAX_URL_LENGTH = 2048


class WebhookSubscriptionCreated(Event):
    """An admin subscribed ``url`` to job events (all, or those of ``type_filter``/``task_filter``)."""

    TYPE = "kaizen.webhook.subscription_created.v1"
    SCOPE = "key"
    subscription_id: uuid.UUID
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    type_filter: list[str] = Field(
        default_factory=list, description="CloudEvents types delivered; empty: every job event."
    )
    task_filter: uuid.UUID | None = Field(None, description="Only this task's job events; None: every task.")
    secret_encrypted: str = Field(description="The signing secret, Fernet-encrypted with KAIZEN_SECRET_KEY.")


class WebhookSubscriptionDeleted(Event):
    """The subscription was deleted; nothing more is delivered to it."""

    TYPE = "kaizen.webhook.subscription_deleted.v1"
    SCOPE = "key"
    subscription_id: uuid.UUID


class WebhookDeliveryAttempted(Event):
    """One HTTP attempt to deliver a job event to a subscription, and how it ended.

    ``event_job_id`` is deliberately not named ``job_id``: an attempt is not a step of the
    job, so it stays out of the job's own history and stream.
    """

    TYPE = "kaizen.webhook.delivery_attempted.v1"
    subscription_id: uuid.UUID
    task_id: uuid.UUID
    event_id: uuid.UUID = Field(description="The delivered event's id (the `webhook-id` header).")
    event_type: str = Field(max_length=128)
    event_job_id: uuid.UUID | None = None
    attempt: int = Field(ge=1)
    outcome: DeliveryOutcome
    status_code: int | None = Field(None, description="The receiver's HTTP status; None: no answer.")
    error: str | None = Field(None, max_length=500, description="Why it failed, when it did.")
    response_snippet: str | None = Field(
        None, max_length=200, description="The start of the receiver's answer, redacted."
    )
    duration_ms: float = Field(ge=0)
    retry_in_seconds: float | None = Field(None, ge=0, description="Delay before the next attempt.")
