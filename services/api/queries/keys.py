"""API keys in the read model (hashes only)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.readmodel.tables import api_keys


async def active_by_hash(conn: AsyncConnection, key_hash: str) -> Any | None:
    """The active key with this hash (one lookup on the unique hash index)."""
    query = select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.status == "active")
    return (await conn.execute(query)).first()


def get(conn: Connection, key_id: uuid.UUID) -> Any | None:
    return conn.execute(select(api_keys).where(api_keys.c.id == str(key_id))).first()


def all_keys(conn: Connection) -> list[Any]:
    query = select(api_keys).order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
    return list(conn.execute(query).all())


def any_exists(conn: Connection) -> bool:
    """Whether bootstrap is closed: any key ever issued, revoked ones included."""
    return conn.scalar(select(api_keys.c.id).limit(1)) is not None


def active_admins(conn: Connection) -> int:
    """How many admin keys are active (the last one cannot be revoked)."""
    query = select(func.count()).select_from(api_keys)
    return int(conn.scalar(query.where(api_keys.c.status == "active", api_keys.c.role == "admin")) or 0)
