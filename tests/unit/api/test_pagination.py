"""Opaque task cursors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.api.pagination import InvalidCursor, decode_cursor, encode_cursor


def test_cursor_round_trips_with_microseconds() -> None:
    created = datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)
    item = str(uuid.uuid4())
    assert decode_cursor(encode_cursor(created, item)) == (created, item)


def test_naive_times_are_utc_and_other_offsets_are_converted() -> None:
    item = str(uuid.uuid4())
    naive = datetime(2024, 1, 15, 10, 30)
    assert decode_cursor(encode_cursor(naive, item))[0] == naive.replace(tzinfo=UTC)
    plus_two = datetime(2024, 1, 15, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert decode_cursor(encode_cursor(plus_two, item))[0] == naive.replace(tzinfo=UTC)


def test_cursor_is_url_safe_and_opaque() -> None:
    cursor = encode_cursor(datetime.now(UTC), str(uuid.uuid4()))
    assert all(c.isalnum() or c in "-_" for c in cursor)


@pytest.mark.parametrize("bad", ["", "abc", "!!!", "WyIyMDI0Il0", "WzEsMl0", "WyJub3QtYS1kYXRlIiwieCJd"])
def test_foreign_cursors_are_refused(bad: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(bad)
