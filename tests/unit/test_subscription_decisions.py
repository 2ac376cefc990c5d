"""Webhook subscriptions are decided once: the projector and the webhooks service agree on any history.

Both fold the keys topic's subscription events: the projector into the read model's
``webhook_subscriptions`` rows, the webhooks service into the subscriptions it delivers to.
Each asks ``shared.decisions``; these tests fold random histories through both (the
projector one batch per event, its rows loaded as ``adapters.load`` would, so a create
meeting a row written by an earlier batch is covered) and compare them, event by event,
with a reference that asks only ``shared.decisions``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.projector.handlers import Fact, evolve, wanted
from services.projector.view import View
from services.webhooks.handlers import Subscriptions
from shared.decisions import SubscriptionLife, decide_subscription_created, decide_subscription_deleted
from shared.events import webhooks as wh
from shared.events.base import Event
from shared.events.envelope import Envelope

SUBS = [uuid.UUID(int=501), uuid.UUID(int=502)]
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def create(k: int, url: str = "https://hooks.example/a") -> wh.WebhookSubscriptionCreated:
    return wh.WebhookSubscriptionCreated(subscription_id=SUBS[k], url=url, secret_encrypted="ciphertext")


def delete(k: int) -> wh.WebhookSubscriptionDeleted:
    return wh.WebhookSubscriptionDeleted(subscription_id=SUBS[k])


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    steps = st.tuples(st.sampled_from(["create", "delete"]), st.integers(0, len(SUBS) - 1))
    return [create(k) if kind == "create" else delete(k) for kind, k in draw(st.lists(steps, max_size=8))]


Lives = dict[uuid.UUID, SubscriptionLife]


def reference(history: list[Event]) -> list[Lives]:
    lives: Lives = dict.fromkeys(SUBS, SubscriptionLife.ABSENT)
    after = []
    for event in history:
        if isinstance(event, wh.WebhookSubscriptionCreated):
            verdict, outcome = (
                decide_subscription_created(lives[event.subscription_id]),
                SubscriptionLife.LIVE,
            )
        else:
            assert isinstance(event, wh.WebhookSubscriptionDeleted)
            verdict, outcome = (
                decide_subscription_deleted(lives[event.subscription_id]),
                SubscriptionLife.DELETED,
            )
        if verdict.accepted:
            lives[event.subscription_id] = outcome
        after.append(dict(lives))
    return after


def fact(event: Event, offset: int) -> Fact:
    envelope = Envelope.wrap(event, source="api", time=T0 + timedelta(seconds=offset))
    return Fact(envelope, "keys", 0, offset)


def projector_batches(history: list[Event]) -> list[Lives]:
    """One batch per event: the rows it wants loaded from the table, its changes upserted into it."""
    table: dict[str, dict[str, Any]] = {}
    after = []
    for offset, event in enumerate(history):
        f = fact(event, offset)
        view = View()
        view.webhook_subscriptions.seed(table[i] for i in wanted([f]).webhook_ids if i in table)
        evolve(view, f)
        for row in view.webhook_subscriptions.changes().upserts:
            table[row["id"]] = row
        after.append({s: _life(table.get(str(s))) for s in SUBS})
    return after


def _life(row: dict[str, Any] | None) -> SubscriptionLife:
    if row is None:
        return SubscriptionLife.ABSENT
    return SubscriptionLife.LIVE if row["deleted_at"] is None else SubscriptionLife.DELETED


def service_fold(history: list[Event]) -> list[Lives]:
    subs = Subscriptions(decrypt=lambda _ciphertext: "secret")
    after = []
    for offset, event in enumerate(history):
        subs.apply(fact(event, offset).envelope)
        after.append({s: subs.life(s) for s in SUBS})
    return after


@settings(max_examples=200, deadline=None)
@given(histories())
def test_the_projector_and_the_webhooks_service_reach_the_verdicts_of_shared_decisions(
    history: list[Event],
) -> None:
    expected = reference(history)
    assert projector_batches(history) == expected
    assert service_fold(history) == expected


def test_a_deletion_of_an_id_never_created_leaves_a_later_create_live_in_both() -> None:
    history: list[Event] = [delete(0), create(0)]
    assert projector_batches(history)[-1][SUBS[0]] is SubscriptionLife.LIVE
    assert service_fold(history)[-1][SUBS[0]] is SubscriptionLife.LIVE


def test_a_copy_of_the_create_in_a_later_batch_does_not_revive_a_deleted_subscription() -> None:
    history: list[Event] = [create(0), delete(0), create(0, url="https://hooks.example/copy")]
    assert projector_batches(history)[-1][SUBS[0]] is SubscriptionLife.DELETED
    assert service_fold(history)[-1][SUBS[0]] is SubscriptionLife.DELETED
