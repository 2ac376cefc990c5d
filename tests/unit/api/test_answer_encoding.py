"""The job list's faster conversion writes the same bytes as the field-by-field one it replaced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter
from sqlalchemy import create_engine, insert, select

from services.api.pagination import as_utc
from services.api.schemas.common import utc_z
from services.api.schemas.jobs import JobResponse
from shared.readmodel.tables import jobs, metadata


def _utc_z_as_before(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")


@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31)),
    st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
)
def test_a_timestamp_is_written_as_before_with_or_without_a_time_zone(
    moment: datetime, zone: timezone | None
) -> None:
    value = moment if zone is None else moment.replace(tzinfo=zone)
    assert utc_z(value) == _utc_z_as_before(value)


@pytest.mark.parametrize("microsecond", [0, 1, 123456])
def test_a_naive_time_from_sqlite_is_utc_with_a_z(microsecond: int) -> None:
    text = utc_z(datetime(2024, 1, 15, 10, 30, 0, microsecond))
    assert text == ("2024-01-15T10:30:00Z" if not microsecond else f"2024-01-15T10:30:00.{microsecond:06d}Z")


def _job_rows() -> list[Any]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    now = datetime(2024, 1, 15, 10, 30, 0, 250000, tzinfo=UTC)
    common = {"triggered_by": "api_on_demand", "feedback_count": 3, "progress_step": None, "created_at": now}
    with engine.begin() as conn:
        conn.execute(
            insert(jobs),
            [
                {
                    **common,
                    "id": str(uuid.uuid4()),
                    "task_id": str(uuid.uuid4()),
                    "prompt_version_id": str(uuid.uuid4()),
                    "status": "SUCCESS",
                    "pr_url": "https://github.com/o/r/pull/1",
                    "error_message": None,
                    "job_metadata": {"trials": 10, "cost_usd": 0.125, "models": ["a", "ü"]},
                    "started_at": now,
                    "completed_at": now + timedelta(minutes=3),
                    "log_offset": 1,
                },
                {
                    **common,
                    "id": str(uuid.uuid4()),
                    "task_id": str(uuid.uuid4()),
                    "prompt_version_id": None,
                    "status": "PENDING",
                    "pr_url": None,
                    "error_message": None,
                    "job_metadata": {},
                    "started_at": None,
                    "completed_at": None,
                    "log_offset": 2,
                },
                {
                    **common,
                    "id": str(uuid.uuid4()),
                    "task_id": str(uuid.uuid4()),
                    "prompt_version_id": None,
                    "status": "FAILED",
                    "pr_url": None,
                    "error_message": "worker lost",
                    "job_metadata": None,
                    "started_at": now,
                    "completed_at": None,
                    "log_offset": 3,
                },
            ],
        )
        rows = list(conn.execute(select(jobs)).all())
    engine.dispose()
    return rows


def test_a_job_list_is_the_same_json_as_built_field_by_field() -> None:
    rows = _job_rows()
    before = [
        JobResponse.model_validate(
            {name: getattr(row, name) for name in JobResponse.model_fields}
            | {"job_metadata": row.job_metadata or {}}
        )
        for row in rows
    ]
    encoder = TypeAdapter(list[JobResponse])
    after = encoder.dump_json([JobResponse.from_row(row) for row in rows])
    assert after == encoder.dump_json(before)
    assert b'"created_at":"2024-01-15T10:30:00.250000Z"' in after
    assert b'"job_metadata":{}' in after  # a NULL column answers an empty object
    # A page validated as one list (the job list's way) answers the same bytes.
    assert encoder.dump_json(JobResponse.from_rows(rows)) == after
