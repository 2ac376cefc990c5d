"""Webhook subscriptions and delivery attempts in the read model."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, select

from shared.readmodel.tables import webhook_deliveries, webhook_subscriptions


def get(conn: Connection, webhook_id: uuid.UUID) -> Any | None:
    """The subscription, unless it was deleted."""
    query = select(webhook_subscriptions).where(
        webhook_subscriptions.c.id == str(webhook_id), webhook_subscriptions.c.deleted_at.is_(None)
    )
    return conn.execute(query).first()


def all_live(conn: Connection) -> list[Any]:
    """Every subscription not deleted, newest first."""
    t = webhook_subscriptions
    query = select(t).where(t.c.deleted_at.is_(None)).order_by(t.c.created_at.desc(), t.c.id.desc())
    return list(conn.execute(query).all())


def deliveries(conn: Connection, webhook_id: uuid.UUID, limit: int, offset: int) -> list[Any]:
    """The subscription's attempts, newest first (the id orders attempts of one instant)."""
    t = webhook_deliveries
    query = (
        select(t)
        .where(t.c.subscription_id == str(webhook_id))
        .order_by(t.c.attempted_at.desc(), t.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(conn.execute(query).all())
