"""Data the read model's database refuses is dead-lettered; the projector never crash-loops on it.

Each record here reaches the log directly, as a buggy or hostile producer would write it,
bypassing the API's validation. Run on SQLite and on PostgreSQL (``db_url``).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import Table, select

from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.events.jobs import JobRequested
from shared.events.topics import Topics
from shared.readmodel import tables as t
from shared.readmodel.db import make_engine
from tests.support import events as ev
from tests.support.system import running_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

#: Beyond every integer column of both databases (PostgreSQL INTEGER, SQLite's 64 bits).
HUGE = 2**70


async def _rows(db_url: str, table: Table) -> list[dict[str, Any]]:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(select(table))).all()]
    finally:
        await engine.dispose()


async def _dead_letters(bootstrap: str, topic: str, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=f"dlq-{uuid.uuid4().hex}"
    )
    await consumer.start()
    try:
        got: list[Any] = []
        async with asyncio.timeout(30):
            while len(got) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(records)
        return got
    finally:
        await consumer.stop()


def _reason(record: Any) -> str:
    return str(dict(record.headers)["kaizen.reason"].decode())


def _feedback(task_id: uuid.UUID, output: str) -> Envelope:
    event = FeedbackRecorded(
        feedback_id=uuid.uuid4(), task_id=task_id, inputs={"text": "t"}, output=output, score=0.5
    )
    return Envelope.wrap(event, source="api")


async def test_a_number_the_database_cannot_store_is_dead_lettered_and_later_records_still_apply(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    task = ev.task_created()
    assert task.task_id is not None
    refused = Envelope.wrap(
        JobRequested(
            job_id=uuid.uuid4(),
            task_id=task.task_id,
            triggered_by="api_on_demand",
            feedback_count=HUGE,
            log_offset=1,
        ),
        source="optimizer",
    )
    later = ev.feedback(task.task_id, 2)
    async with running_system(kafka_bootstrap, topics, db_url) as system:
        await system.wait_projected(await system.append(task, refused, *later))
    assert {r["id"] for r in await _rows(db_url, t.feedback)} == {str(e.data.feedback_id) for e in later}  # type: ignore[attr-defined]
    assert await _rows(db_url, t.jobs) == []
    [dead] = await _dead_letters(kafka_bootstrap, topics.deadletter, 1)
    assert str(refused.id).encode() in dead.value
    reason = _reason(dead)
    assert reason.startswith("projection failed: the database refused the data")
    assert "INSERT INTO jobs" in reason
    assert str(HUGE) not in reason  # the reason never carries the data


async def test_a_nul_character_never_freezes_the_read_model(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    task = ev.task_created()
    assert task.task_id is not None
    nul = _feedback(task.task_id, "secret\x00value")
    later = _feedback(task.task_id, "fine")
    async with running_system(kafka_bootstrap, topics, db_url) as system:
        await system.wait_projected(await system.append(task, nul, later))
    outputs = {r["output"] for r in await _rows(db_url, t.feedback)}
    if db_url.startswith("sqlite"):
        # SQLite stores NUL in text; only PostgreSQL refuses it.
        assert outputs == {"secret\x00value", "fine"}
        return
    assert outputs == {"fine"}
    [dead] = await _dead_letters(kafka_bootstrap, topics.deadletter, 1)
    assert str(nul.id).encode() in dead.value
    reason = _reason(dead)
    assert "SQLSTATE 22021" in reason and "INSERT INTO feedback" in reason
    assert "secret" not in reason
