"""The projector's fold of webhook events: subscriptions and every delivery attempt.

Pure like ``handlers``: each function changes the batch's :class:`View`. Timestamps are
the envelopes', so a replay writes the same rows. Every attempt is kept (one row per
``WebhookDeliveryAttempted``, keyed by its event id): pruning "the last N" would make the
rows depend on the order partitions are folded in, and the view pages anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.decisions import SubscriptionLife, decide_subscription_created, decide_subscription_deleted
from shared.events import webhooks as wh
from shared.events.base import Event

if TYPE_CHECKING:
    from services.projector.handlers import Fact
    from services.projector.view import Row, View, Wanted


def want(wanted: Wanted, event: Event) -> None:
    """The rows a webhook event reads: a create or a deletion reads its subscription."""
    if isinstance(event, wh.WebhookSubscriptionCreated | wh.WebhookSubscriptionDeleted):
        wanted.webhook_ids.add(str(event.subscription_id))


def _life(row: Row | None) -> SubscriptionLife:
    if row is None:
        return SubscriptionLife.ABSENT
    return SubscriptionLife.LIVE if row["deleted_at"] is None else SubscriptionLife.DELETED


def on_subscription_created(view: View, f: Fact, e: wh.WebhookSubscriptionCreated) -> None:
    values = {
        "id": str(e.subscription_id),
        "url": e.url,
        "type_filter": list(e.type_filter),
        "task_filter": str(e.task_filter) if e.task_filter is not None else None,
        "secret_encrypted": e.secret_encrypted,
        "created_at": f.time,
    }
    key = (values["id"],)
    if decide_subscription_created(_life(view.webhook_subscriptions.get(*key))).accepted:
        view.webhook_subscriptions.insert(values)
    else:
        view.webhook_subscriptions.bind(key, values)


def on_subscription_deleted(view: View, f: Fact, e: wh.WebhookSubscriptionDeleted) -> None:
    key = (str(e.subscription_id),)
    if decide_subscription_deleted(_life(view.webhook_subscriptions.get(*key))).accepted:
        view.webhook_subscriptions.update(key, deleted_at=f.time)
    else:
        view.webhook_subscriptions.bind(key, {"deleted_at": f.time})


def on_delivery_attempted(view: View, f: Fact, e: wh.WebhookDeliveryAttempted) -> None:
    view.webhook_deliveries.add(
        {
            "id": str(f.envelope.id),
            "subscription_id": str(e.subscription_id),
            "event_id": str(e.event_id),
            "event_type": e.event_type,
            "task_id": str(e.task_id),
            "job_id": str(e.event_job_id) if e.event_job_id is not None else None,
            "attempt": e.attempt,
            "outcome": e.outcome,
            "status_code": e.status_code,
            "error": e.error,
            "response_snippet": e.response_snippet,
            "duration_ms": e.duration_ms,
            "retry_in_seconds": e.retry_in_seconds,
            "attempted_at": f.time,
        }
    )


HANDLERS: dict[type[Event], Callable[[View, Fact, Any], None]] = {
    wh.WebhookSubscriptionCreated: on_subscription_created,
    wh.WebhookSubscriptionDeleted: on_subscription_deleted,
    wh.WebhookDeliveryAttempted: on_delivery_attempted,
}
