"""The optimizer service refuses a job whose task names a refused model, before any LLM call;
and it counts each feedback id once, however often the log holds it.

The events reach the log directly, as one saved before the allowlist existed (or before
the operator narrowed it) would be there, or as an API retry after a 503/504 appends its
feedback again: the API's check is not the last word.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from shared.events.base import derive_id
from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.events.topics import Topics
from tests.support import events as ev
from tests.support.readmodel import job_history, wait_for_job
from tests.support.system import running_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_a_job_of_a_task_naming_a_url_as_its_model_fails_with_a_clear_reason(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = ev.task_created(
        "exfiltrate",
        feedback_threshold=3,
        input_schema=["ticket"],
        teacher_model="huggingface/https://evil.example/x",
    )
    assert task.task_id is not None
    feedback = [
        Envelope.wrap(
            FeedbackRecorded(
                feedback_id=uuid.uuid4(),
                task_id=task.task_id,
                inputs={"ticket": f"t{i}"},
                output="o",
                score=1,
            ),
            source="api",
        )
        for i in range(3)
    ]
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "optimizer")) as system:
        await system.append(task, *feedback)
        job = await wait_for_job(
            db_url, lambda j: j["status"] == "FAILED", timeout=120, task_id=str(task.task_id)
        )

    assert "teacher_model" in job["error_message"] and "not a URL" in job["error_message"]
    # Refused before it started: no worker ran, no LLM was called.
    assert await job_history(db_url, job["id"]) == ["kaizen.job.requested.v1", "kaizen.job.failed.v1"]


async def test_feedback_appended_twice_counts_once_toward_the_threshold(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = ev.task_created("retried", feedback_threshold=3, input_schema=["ticket"])
    assert task.task_id is not None
    first, second, third = (
        Envelope.wrap(
            FeedbackRecorded(
                feedback_id=uuid.uuid4(),
                task_id=task.task_id,
                inputs={"ticket": f"t{i}"},
                output="o",
                score=1,
            ),
            source="api",
        )
        for i in range(3)
    )
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "optimizer")) as system:
        # A retry whose first write had landed: the same event again, or a new envelope of it.
        await system.append(task, first, first, second, Envelope.wrap(second.data, source="api"))
        [crossing] = await system.append(third)
        job = await wait_for_job(db_url, lambda j: True, timeout=120, task_id=str(task.task_id))

    # Triggered by the third distinct feedback, not by a copy, and counting three.
    assert job["id"] == str(derive_id("auto-job", task.task_id, crossing.offset))
    assert job["triggered_by"] == "auto_threshold" and job["feedback_count"] == 3
