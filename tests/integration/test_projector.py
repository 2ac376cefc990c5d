"""The projector folds the real log into the read model, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import func, select

from shared.events.envelope import Envelope
from shared.events.topics import Topics
from shared.readmodel import tables as t
from shared.readmodel.db import make_engine
from tests.support import events as ev
from tests.support.system import running_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _rows(db_url: str, table: t.Table) -> list[dict[str, object]]:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(select(table))).all()]
    finally:
        await engine.dispose()


async def test_a_job_history_folds_into_its_status_and_metadata(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    task = ev.task_created()
    task_id = task.task_id
    assert task_id is not None
    succeeded = ev.job_lifecycle(task_id, "success")
    failed = ev.job_lifecycle(task_id, "failed")
    pr_failed = ev.job_lifecycle(task_id, "pr_failed")
    async with running_system(kafka_bootstrap, topics, db_url) as system:
        positions = await system.append(task, *ev.feedback(task_id, 5), *succeeded, *failed, *pr_failed)
        await system.wait_projected(positions)
    jobs = {r["id"]: r for r in await _rows(db_url, t.jobs)}
    assert jobs[str(succeeded[0].job_id)]["status"] == "SUCCESS"
    assert jobs[str(failed[0].job_id)]["status"] == "FAILED"
    assert "unreachable" in str(jobs[str(failed[0].job_id)]["error_message"])
    assert jobs[str(pr_failed[0].job_id)]["status"] == "PR_FAILED"
    done = jobs[str(succeeded[0].job_id)]
    assert done["feedback_count"] == 52
    assert done["job_metadata"]["train_size"] == 41
    assert done["job_metadata"]["trials_completed"] == 3
    assert done["started_at"] is not None and done["completed_at"] is not None
    history = [r for r in await _rows(db_url, t.job_events) if r["job_id"] == str(succeeded[0].job_id)]
    assert len(history) == len(succeeded)
    versions = await _rows(db_url, t.prompt_versions)
    assert sorted(v["version_number"] for v in versions) == [1, 2]
    assert len(await _rows(db_url, t.feedback)) == 5


async def test_a_late_stage_event_never_revives_a_finished_job(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    task = ev.task_created()
    assert task.task_id is not None
    history = ev.job_lifecycle(task.task_id, "failed")
    late_trial = ev.job_lifecycle(task.task_id, "success")[4]  # a trial event of another job id
    stray = Envelope.wrap(
        late_trial.data.model_copy(update={"job_id": history[0].job_id}), source="optimizer"
    )
    async with running_system(kafka_bootstrap, topics, db_url) as system:
        await system.wait_projected(await system.append(task, *history, stray))
    jobs = await _rows(db_url, t.jobs)
    assert jobs[0]["status"] == "FAILED"


async def test_redelivered_events_with_the_same_id_are_applied_once(
    kafka_bootstrap: str, topics: Topics
) -> None:
    task = ev.task_created()
    assert task.task_id is not None
    history = ev.job_lifecycle(task.task_id, "success")
    async with running_system(kafka_bootstrap, topics, _sqlite(topics)) as system:
        await system.wait_projected(await system.append(task, *history, *history))
        url = system.db_url
    assert len(await _rows(url, t.job_events)) == len(history)
    assert len(await _rows(url, t.prompt_versions)) == 1


def _sqlite(topics: Topics) -> str:
    import tempfile

    return f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/{topics.prefix}.db"


async def test_a_poison_record_goes_to_the_dead_letter_topic_and_the_projector_goes_on(
    kafka_bootstrap: str, topics: Topics
) -> None:
    task = ev.task_created()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with running_system(kafka_bootstrap, topics, _sqlite(topics)) as system:
            await producer.send_and_wait(topics.tasks, b"{not json", key=str(task.task_id).encode())
            await producer.send_and_wait(
                topics.tasks, b'{"type": "kaizen.nope.v1", "data": {}}', key=str(task.task_id).encode()
            )
            await system.wait_projected(await system.append(task))
            url = system.db_url
    finally:
        await producer.stop()
    assert len(await _rows(url, t.tasks)) == 1
    dead = await _read_all(kafka_bootstrap, topics.deadletter, 2)
    reasons = [dict(r.headers)["kaizen.reason"].decode() for r in dead]
    assert "not UTF-8 JSON" in reasons[0]
    assert "unknown event type 'kaizen.nope.v1'" in reasons[1]
    assert dead[0].value == b"{not json"


async def _read_all(bootstrap: str, topic: str, n: int) -> list[object]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"reader-{uuid.uuid4().hex}",
    )
    await consumer.start()
    try:
        got: list[object] = []
        async with asyncio.timeout(30):
            while len(got) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(records)
        return got
    finally:
        await consumer.stop()


async def test_the_offset_is_stored_with_the_rows(kafka_bootstrap: str, topics: Topics, db_url: str) -> None:
    task = ev.task_created()
    assert task.task_id is not None
    async with running_system(kafka_bootstrap, topics, db_url) as system:
        positions = await system.append(task, *ev.feedback(task.task_id, 20))
        await system.wait_projected(positions)
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        offsets = {r.topic: r.next_offset for r in (await conn.execute(select(t.projector_offsets))).all()}
        count = await conn.scalar(select(func.count()).select_from(t.feedback))
    await engine.dispose()
    assert offsets[topics.tasks] == positions[-1].offset + 1
    assert count == 20


async def test_rebuilding_a_log_with_a_reused_task_name_always_gives_the_same_model(
    kafka_bootstrap: str, topics: Topics, tmp_path: object
) -> None:
    from services.projector.bootstrap import rebuild
    from shared.events.base import derive_id
    from shared.events.tasks import TaskCreated, TaskDeleted
    from shared.readmodel.compare import differences

    first = TaskCreated(task_id=derive_id("task", "scratch", 0), name="scratch", request_id="r1")
    again = TaskCreated(task_id=derive_id("task", "scratch", 1), name="scratch", request_id="r2")
    history = [
        Envelope.wrap(first, source="api", correlation_id="r1"),
        Envelope.wrap(TaskDeleted(task_id=first.task_id), source="api"),
        Envelope.wrap(again, source="api", correlation_id="r2"),
    ]
    async with running_system(kafka_bootstrap, topics, _sqlite(topics)) as system:
        await system.wait_projected(await system.append(*history))
        live_url = system.db_url
    live = make_engine(live_url)
    try:
        for attempt in range(4):
            url = f"{live_url}.rebuild-{attempt}"
            await rebuild(kafka_bootstrap, topics, url)
            rebuilt = make_engine(url)
            assert await differences(live, rebuilt) == []
            await rebuilt.dispose()
    finally:
        await live.dispose()
    assert {r["name"] for r in await _rows(live_url, t.tasks)} == {"scratch"}
    assert len(await _rows(live_url, t.tasks)) == 2
