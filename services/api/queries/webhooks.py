"""Webhook subscriptions and delivery attempts in the read model."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.readmodel.tables import webhook_deliveries, webhook_subscriptions


async def get(conn: AsyncConnection, webhook_id: uuid.UUID) -> Any | None:
    """The subscription, unless it was deleted."""
    query = select(webhook_subscriptions).where(
        webhook_subscriptions.c.id == str(webhook_id), webhook_subscriptions.c.deleted_at.is_(None)
    )
    return (await conn.execute(query)).first()


async def all_live(conn: AsyncConnection) -> list[Any]:
    """Every subscription not deleted, newest first."""
    t = webhook_subscriptions
    query = select(t).where(t.c.deleted_at.is_(None)).order_by(t.c.created_at.desc(), t.c.id.desc())
    return list((await conn.execute(query)).all())


async def deliveries(conn: AsyncConnection, webhook_id: uuid.UUID, limit: int, offset: int) -> list[Any]:
    """The subscription's attempts, newest first (the id orders attempts of one instant)."""
    t = webhook_deliveries
    query = (
        select(t)
        .where(t.c.subscription_id == str(webhook_id))
        .order_by(t.c.attempted_at.desc(), t.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list((await conn.execute(query)).all())
