"""The service's fold of subscriptions, one function per event type (``HANDLERS``), and routing.

Subscriptions arrive on the keys topic in one order for every reader. A job event is
routed to the subscriptions that :func:`services.webhooks.domain.matches` selects.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.webhooks import domain
from services.webhooks.domain import Subscription
from shared.decisions import SubscriptionLife, decide_subscription_created, decide_subscription_deleted
from shared.events import webhooks as wh
from shared.events.base import Event
from shared.events.envelope import Envelope

log = logging.getLogger(__name__)


@dataclass
class Subscriptions:
    """The live subscriptions, by id.

    ``decrypt`` turns a stored ciphertext into the secret, or ``None`` when this
    installation's key cannot read it (its deliveries are then declared dead).
    """

    decrypt: Callable[[str], str | None]
    by_id: dict[uuid.UUID, Subscription] = field(default_factory=dict)
    deleted: set[uuid.UUID] = field(default_factory=set)

    def apply(self, envelope: Envelope) -> None:
        handler = HANDLERS.get(type(envelope.data))
        if handler is not None:
            handler(self, envelope, envelope.data)

    def route(self, envelope: Envelope) -> list[Subscription]:
        """The subscriptions a job event goes to, in a stable order."""
        found = [s for s in self.by_id.values() if domain.matches(s, envelope)]
        return sorted(found, key=lambda s: str(s.id))

    def alive(self, subscription_id: uuid.UUID) -> bool:
        return subscription_id in self.by_id

    def life(self, subscription_id: uuid.UUID) -> SubscriptionLife:
        if subscription_id in self.by_id:
            return SubscriptionLife.LIVE
        return SubscriptionLife.DELETED if subscription_id in self.deleted else SubscriptionLife.ABSENT


def on_subscription_created(
    subs: Subscriptions, envelope: Envelope, e: wh.WebhookSubscriptionCreated
) -> None:
    if decide_subscription_created(subs.life(e.subscription_id)).rejected:
        return  # a copy of the first create, or a create after the deletion
    subs.by_id[e.subscription_id] = Subscription(
        id=e.subscription_id,
        url=e.url,
        type_filter=frozenset(e.type_filter),
        task_filter=e.task_filter,
        secret=subs.decrypt(e.secret_encrypted),
        created_at=envelope.time,
    )


def on_subscription_deleted(
    subs: Subscriptions, envelope: Envelope, e: wh.WebhookSubscriptionDeleted
) -> None:
    if decide_subscription_deleted(subs.life(e.subscription_id)).accepted:
        del subs.by_id[e.subscription_id]
        subs.deleted.add(e.subscription_id)


HANDLERS: dict[type[Event], Callable[[Subscriptions, Envelope, Any], None]] = {
    wh.WebhookSubscriptionCreated: on_subscription_created,
    wh.WebhookSubscriptionDeleted: on_subscription_deleted,
}
