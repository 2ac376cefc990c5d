"""Opaque cursors for keyset pagination over ``(created_at, id)``.

The cursor names the last item of a page. Ordering by the pair keeps pages stable when
several items share a timestamp; the id breaks the tie.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime


class InvalidCursor(ValueError):
    """The cursor was not produced by this API (or was altered)."""


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time in the read model is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([as_utc(created_at).isoformat(), item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, item_id = json.loads(raw)
        return as_utc(datetime.fromisoformat(created)), str(uuid.UUID(item_id))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("is not a cursor returned by this API") from exc
