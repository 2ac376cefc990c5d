"""A read model made by an earlier version gets the columns added since, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.readmodel.db import create_schema, make_engine

pytestmark = pytest.mark.integration


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
