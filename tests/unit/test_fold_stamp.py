"""Local state written by another fold version is emptied and folded again (shared/fold_stamp.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.optimizer import adapters as optimizer_store
from services.optimizer.adapters import StateStore
from shared.kafka.offsets import local_state_engine

TASK = "00000000-0000-0000-0000-000000000001"


async def _count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_an_optimizer_store_from_before_the_stamp_is_emptied_and_read_from_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = local_state_engine(tmp_path / "o.db")
    try:
        async with engine.begin() as conn:  # a store as the fold before ADR 0006 left it
            await conn.run_sync(optimizer_store.offsets.create)
            await conn.run_sync(optimizer_store.task_states.create)
            state = {
                "exists": True,
                "threshold": 5,
                "live_since_cutoff": 0,
                "examples": 0,
                "active_job": None,
            }
            await conn.execute(
                optimizer_store.task_states.insert().values(
                    task_id=TASK, partition=0, state=json.loads(json.dumps(state)), settings={}
                )
            )
            await conn.execute(text("INSERT INTO offsets VALUES ('tasks', 0, 42)"))
        with caplog.at_level(logging.WARNING, logger="shared.fold_stamp"):
            await StateStore(engine).create()
        assert await _count(engine, optimizer_store.task_states) == 0
        assert await _count(engine, optimizer_store.offsets) == 0  # every partition is folded from offset 0
        assert "folded again from its beginning" in caplog.text
    finally:
        await engine.dispose()


async def test_an_optimizer_store_of_this_fold_version_is_kept(tmp_path: Path) -> None:
    engine = local_state_engine(tmp_path / "o.db")
    try:
        store = StateStore(engine)
        await store.create()
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO offsets VALUES ('tasks', 0, 42)"))
        await StateStore(engine).create()
        assert await _count(engine, optimizer_store.offsets) == 1
        async with engine.connect() as conn:
            stamp = await conn.scalar(text("SELECT version FROM fold_version"))
        assert stamp == optimizer_store.FOLD_VERSION
    finally:
        await engine.dispose()


async def test_a_new_store_is_stamped_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = local_state_engine(tmp_path / "o.db")
    try:
        with caplog.at_level(logging.WARNING, logger="shared.fold_stamp"):
            await StateStore(engine).create()
        assert "folded again" not in caplog.text
    finally:
        await engine.dispose()
