"""Paging: cursors for keyset pagination over ``(created_at, id)``, and offsets' bounds.

The cursor names the last item of a page. Ordering by the pair keeps pages stable when
several items share a timestamp; the id breaks the tie. It is opaque to clients, but its
shape is exact (``CURSOR_PATTERN``, in the OpenAPI document): every string of that shape
is a position in the keyset, so a client can only be refused for a malformed one.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Query

#: Microseconds since the Unix epoch (up to the year 2286), ``_``, the id's 32 hex digits.
CURSOR_PATTERN = r"^[0-9]{1,16}_[0-9a-f]{32}$"
#: The largest row offset both read-model databases take (a signed 64-bit integer).
MAX_OFFSET = 2**63 - 1

#: The query parameters of a paged list, bounds included, so the OpenAPI document says them.
Limit = Annotated[int, Query(ge=1, le=200, description="Number of results (default: 50, max: 200)")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Number of items to skip (default: 0)")]
#: The pattern is documented, not validated here: ``decode_cursor`` refuses in plainer words.
Cursor = Annotated[
    str | None,
    Query(
        description="The `next_cursor` of the previous page; omit for the first.",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    ),
]

_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidCursor(ValueError):
    """The cursor was not produced by this API (or was altered)."""


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time in the read model is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def encode_cursor(created_at: datetime, item_id: str) -> str:
    micros = (as_utc(created_at) - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{uuid.UUID(item_id).hex}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not _CURSOR.fullmatch(cursor):
        raise InvalidCursor("is not a cursor returned by this API")
    micros, item_hex = cursor.split("_")
    return _EPOCH + timedelta(microseconds=int(micros)), str(uuid.UUID(item_hex))
