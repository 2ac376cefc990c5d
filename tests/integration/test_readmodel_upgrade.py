"""A read model made by an earlier version gets the columns added since, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from shared.readmodel.db import create_schema, make_engine

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_columns_added_since_a_read_model_was_made_are_added_with_their_defaults(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await create_schema(engine)
        async with engine.begin() as conn:  # the prompt_versions table as an earlier version made it
            await conn.execute(text("DROP TABLE prompt_versions"))
            await conn.execute(
                text(
                    "CREATE TABLE prompt_versions (id VARCHAR(36) PRIMARY KEY, task_id VARCHAR(36) NOT NULL, "
                    "job_id VARCHAR(36), version_number INTEGER NOT NULL, prompt_text TEXT NOT NULL, "
                    "demos JSON, dspy_state JSON, eval_score FLOAT, baseline_score FLOAT, "
                    "optimized_score FLOAT, status VARCHAR(16) NOT NULL, optimizer VARCHAR(64) NOT NULL, "
                    "dspy_version VARCHAR(32), created_at TIMESTAMP NOT NULL)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO prompt_versions (id, task_id, version_number, prompt_text, status, "
                    "optimizer, created_at) "
                    "VALUES ('v1', 't1', 1, 'p', 'draft', 'MIPROv2', '2026-01-01 00:00:00')"
                )
            )

        await create_schema(engine)

        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT source, test_score FROM prompt_versions"))).one()
        assert tuple(row) == ("job", None)
    finally:
        await engine.dispose()


async def test_feedback_counters_added_to_an_older_read_model_are_filled_from_its_feedback(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    try:
        await create_schema(engine)
        async with engine.begin() as conn:  # the tasks table as a version before the counters made it
            await conn.execute(text("ALTER TABLE tasks DROP COLUMN live_feedback"))
            await conn.execute(text("ALTER TABLE tasks DROP COLUMN live_since_cutoff"))
            for task_id, cutoff in (("t1", 2), ("t2", -1), ("t3", -1)):
                await conn.execute(
                    text(
                        "INSERT INTO tasks (id, name, name_key, settings, deleted, created_at, updated_at, "
                        "last_job_cutoff) VALUES (:id, :id, :id, '{}', false, :at, :at, :cutoff)"
                    ),
                    {"id": task_id, "at": T0, "cutoff": cutoff},
                )
            feedback = [
                ("f1", "t1", "sdk", 1),
                ("f2", "t1", "user_rating", 2),  # at the cut-off: live, not since it
                ("f3", "t1", "auto_eval", 3),
                ("f4", "t1", "seed", 4),  # seeds never count
                ("f5", "t2", "sdk", 5),
                ("f6", "t9", "sdk", 6),  # a task that does not exist
            ]
            for feedback_id, task_id, source, offset in feedback:
                await conn.execute(
                    text(
                        "INSERT INTO feedback (id, task_id, inputs, output, score, source, metadata, "
                        "created_at, log_offset) "
                        "VALUES (:id, :task, '{}', 'o', 0.5, :source, '{}', :at, :offset)"
                    ),
                    {"id": feedback_id, "task": task_id, "source": source, "at": T0, "offset": offset},
                )

        await create_schema(engine)

        async with engine.connect() as conn:
            query = text("SELECT id, live_feedback, live_since_cutoff FROM tasks ORDER BY id")
            rows = (await conn.execute(query)).all()
        assert [tuple(r) for r in rows] == [("t1", 3, 1), ("t2", 1, 1), ("t3", 0, 0)]
    finally:
        await engine.dispose()


async def test_a_read_model_that_has_the_counters_keeps_them_at_start(db_url: str) -> None:
    """Only a column just added is backfilled: the projector's counts are never recomputed at start."""
    engine = make_engine(db_url)
    try:
        await create_schema(engine)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tasks (id, name, name_key, settings, deleted, created_at, updated_at, "
                    "last_job_cutoff, live_feedback, live_since_cutoff) "
                    "VALUES ('t1', 't', 't', '{}', false, :at, :at, -1, 5, 4)"
                ),
                {"at": T0},
            )

        await create_schema(engine)

        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT live_feedback, live_since_cutoff FROM tasks"))).one()
        assert tuple(row) == (5, 4)
    finally:
        await engine.dispose()
