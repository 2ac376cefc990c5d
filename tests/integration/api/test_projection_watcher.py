"""The read-your-writes wait: one poller per process wakes every write the projector has applied."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.adapters import NotYetVisible, ProjectionWatcher
from services.api.security import hash_key, key_prefix, new_api_key
from shared.events.envelope import Envelope
from shared.events.keys import ApiKeyCreated
from shared.kafka.offsets import TableOffsets
from shared.kafka.producer import Position
from shared.readmodel.tables import projector_offsets
from tests.integration.api.conftest import MakeApi, assert_problem

TOPIC = "test.tasks"
MORE = {"name": "more", "role": "read"}


async def project_up_to(engine: AsyncEngine, partition: int, next_offset: int) -> None:
    """Store the projector's offset as the projector does, in a transaction of its own."""
    async with engine.begin() as conn:
        await TableOffsets(engine, projector_offsets).save(conn, TOPIC, partition, next_offset)


async def test_a_waiter_wakes_once_the_projector_has_applied_its_offset(engine: AsyncEngine) -> None:
    watcher = ProjectionWatcher(engine, interval=0.002)
    try:
        waiting = asyncio.create_task(watcher.applied([Position(TOPIC, 1, 5)], timeout=30))
        await project_up_to(engine, 1, 5)  # offset 5 itself is not applied yet
        await project_up_to(engine, 0, 100)  # another partition's progress does not count
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await project_up_to(engine, 1, 6)
        await asyncio.wait_for(waiting, 10)
    finally:
        await watcher.close()


async def test_one_tick_wakes_exactly_the_writes_the_projector_passed(engine: AsyncEngine) -> None:
    watcher = ProjectionWatcher(engine, interval=0.002)
    try:
        waiters = [
            asyncio.create_task(watcher.applied([Position(TOPIC, 0, offset)], timeout=30))
            for offset in range(40)
        ]
        await asyncio.sleep(0.05)
        await project_up_to(engine, 0, 25)
        await asyncio.wait_for(asyncio.gather(*waiters[:25]), 10)
        await asyncio.sleep(0.1)
        assert not any(w.done() for w in waiters[25:])
        await project_up_to(engine, 0, 40)
        await asyncio.wait_for(asyncio.gather(*waiters[25:]), 10)
    finally:
        await watcher.close()


async def test_a_write_the_projector_does_not_apply_in_time_is_not_yet_visible(engine: AsyncEngine) -> None:
    watcher = ProjectionWatcher(engine, interval=0.002)
    try:
        with pytest.raises(NotYetVisible):
            await watcher.applied([Position(TOPIC, 0, 3)], timeout=0.2)
        # A later write is still woken: the timed-out waiter left nothing behind that blocks it.
        waiting = asyncio.create_task(watcher.applied([Position(TOPIC, 0, 4)], timeout=30))
        await project_up_to(engine, 0, 5)
        await asyncio.wait_for(waiting, 10)
    finally:
        await watcher.close()


async def test_a_write_the_projector_never_applies_answers_504(make_api: MakeApi) -> None:
    # No projector: the key is read from the log by the API's key feed, and the write waits in vain.
    async with make_api(services=(), bootstrap=False, write_timeout_seconds=1.0) as api:
        key = new_api_key()
        created = ApiKeyCreated(
            key_id=uuid.uuid4(), name="seeded", key_hash=hash_key(key), prefix=key_prefix(key), bootstrap=True
        )
        await api.system.append(Envelope.wrap(created, source="api"))
        api.client.headers["X-API-Key"] = key
        async with asyncio.timeout(30):
            # 401 until the API's key feed has read the seeded key.
            while (response := await api.client.post("/api/v1/keys", json=MORE)).status_code == 401:
                await asyncio.sleep(0.05)
        assert_problem(response, 504)
