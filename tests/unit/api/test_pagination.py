"""Opaque task cursors."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.pagination import CURSOR_PATTERN, InvalidCursor, decode_cursor, encode_cursor


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


@given(st.from_regex(CURSOR_PATTERN, fullmatch=True))
def test_every_cursor_of_the_documented_shape_is_a_position(cursor: str) -> None:
    created, item = decode_cursor(cursor)
    assert created.tzinfo is UTC and uuid.UUID(item)


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)), st.uuids())
def test_cursors_have_the_documented_shape_and_round_trip(created: datetime, item: uuid.UUID) -> None:
    cursor = encode_cursor(created, str(item))
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert decode_cursor(cursor) == (created.replace(tzinfo=UTC), str(item))
