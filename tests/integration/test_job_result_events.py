"""A job's result events on a real broker: under the record limit, and complete after a
partial append (issue 11, finding 7).

``EventLog.append_all`` is not atomic. The optimizer re-appends a step's very envelopes
until Kafka acknowledges them, and every consumer dedupes by event id; these tests show
the log then holds the whole step and the projector shows one job, one version.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services.optimizer import events_out
from services.optimizer.spec import BeforeAfter, Example, JobResult, JobSpec
from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.jobs import JobRequested, JobStarted
from shared.events.prompts import PromptVersionCreated
from shared.events.topics import Topics
from shared.kafka.producer import MAX_EVENT_BYTES, EventLog, EventTooLarge, LogUnavailable, Position
from shared.readmodel.tables import prompt_versions
from tests.integration.api.conftest import read_log
from tests.support import events as ev
from tests.support.readmodel import job_history, rows, wait_for_job
from tests.support.system import running_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def job(task_id: uuid.UUID) -> Any:
    job_id = uuid.uuid4()
    return SimpleNamespace(job_id=str(job_id), task_id=str(task_id), correlation_id=str(job_id))


def spec(row: Any) -> JobSpec:
    return JobSpec(
        job_id=uuid.UUID(row.job_id),
        task_id=uuid.UUID(row.task_id),
        task_name="t",
        input_fields=["ticket"],
        examples=[Example(inputs={"ticket": f"t{i}"}, output="team", score=1.0) for i in range(20)],
    )


def result(big: bool) -> JobResult:
    size = 400_000 if big else 10
    return JobResult(
        prompt_text="Name the team for this ticket.\n",
        demos=[{"ticket": "d" * size, "output": "team"} for _ in range(4)],
        dspy_state={"predict": {"demos": ["s" * size] * 4}},
        baseline_score=0.5,
        optimized_score=0.8,
        export_score=0.8,
        train_size=16,
        val_size=4,
        trials_completed=3,
        llm_calls=10,
        prompt_tokens=100,
        completion_tokens=10,
        cost_usd=0.0,
        duration_seconds=1.0,
        dspy_version="3",
        dataset_hash="ab" * 32,
        seed=1,
        examples=[BeforeAfter(inputs={"ticket": "e" * size}, expected="x" * size, before="b", after="a")] * 3,
    )


async def started(events: EventLog, row: Any) -> list[Position]:
    ids = {"job_id": uuid.UUID(row.job_id), "task_id": uuid.UUID(row.task_id)}
    return await events.append_all(
        [
            Envelope.wrap(
                JobRequested(**ids, triggered_by="api_on_demand", feedback_count=20, log_offset=1),
                source="optimizer",
            ),
            Envelope.wrap(
                JobStarted(**ids, worker="w", teacher_model="m", judge_model="m"), source="optimizer"
            ),
        ]
    )


async def compiled(events: EventLog, row: Any, big: bool = False) -> None:
    job_spec = spec(row)
    progress = events_out.ProgressEmitter(events, row, job_spec, 1)
    await events_out.compiled(events, row, job_spec, result(big), progress, settings={})


async def records_of(bootstrap: str, topics: Topics, job_id: str) -> list[tuple[bytes, Envelope]]:
    found = [(value, codec.decode(value)) for value in await read_log(bootstrap, topics.tasks)]
    return [(value, e) for value, e in found if str(e.job_id) == job_id]


class InterruptedLog(EventLog):
    """A real log whose first append stops after its first event reached Kafka (a crash mid-batch)."""

    interrupted = False

    async def append_all(self, envelopes: list[Envelope]) -> list[Position]:
        if not self.interrupted and envelopes[0].type == PromptVersionCreated.TYPE:
            self.interrupted = True
            await super().append_all(envelopes[:1])
            raise LogUnavailable("connection lost after the first record")
        return await super().append_all(envelopes)


async def test_a_result_larger_than_a_record_is_fitted_and_every_record_decodes(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    task = ev.task_created("big-results")
    assert task.task_id is not None
    row = job(task.task_id)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    async with running_system(kafka_bootstrap, topics, db_url) as system:
        await system.append(task)
        await started(system.events, row)
        await compiled(system.events, row, big=True)
        done = await wait_for_job(db_url, lambda j: j["status"] == "SUCCESS", timeout=60, id=row.job_id)

    records = await records_of(kafka_bootstrap, topics, row.job_id)
    assert all(len(value) <= MAX_EVENT_BYTES for value, _ in records)
    [version] = [e.data for _, e in records if isinstance(e.data, PromptVersionCreated)]
    assert version.dspy_state["dspy_state_omitted"] is True and len(version.dspy_state["sha256"]) == 64
    assert version.prompt_text == "Name the team for this ticket.\n"
    assert any("dspy_state omitted" in n for n in done["job_metadata"]["notes"])
    assert any("before/after examples cut" in n for n in done["job_metadata"]["notes"])
    [stored] = await rows(db_url, prompt_versions, job_id=row.job_id)
    assert stored["dspy_state"]["dspy_state_omitted"] is True


async def test_an_interrupted_append_is_completed_and_consumers_see_each_event_once(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    task = ev.task_created("interrupted")
    assert task.task_id is not None
    row = job(task.task_id)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    log = InterruptedLog(kafka_bootstrap, topics, client_id="optimizer-under-test")
    try:
        async with running_system(kafka_bootstrap, topics, db_url) as system:
            await system.append(task)
            await started(log, row)
            await compiled(log, row)
            await wait_for_job(db_url, lambda j: j["status"] == "SUCCESS", timeout=60, id=row.job_id)
            history = await job_history(db_url, row.job_id)
    finally:
        await log.stop()

    assert log.interrupted
    records = [e for _, e in await records_of(kafka_bootstrap, topics, row.job_id)]
    # The first try left the version alone in the log; the second appended the whole step.
    assert [e.type for e in records][-4:] == [
        "kaizen.prompt.version_created.v1",
        "kaizen.prompt.version_created.v1",
        "kaizen.job.compiled.v1",
        "kaizen.job.succeeded.v1",
    ]
    assert records[-4].id == records[-3].id
    assert history == [
        "kaizen.job.requested.v1",
        "kaizen.job.started.v1",
        "kaizen.prompt.version_created.v1",
        "kaizen.job.compiled.v1",
        "kaizen.job.succeeded.v1",
    ]
    assert len(await rows(db_url, prompt_versions, job_id=row.job_id)) == 1


async def test_a_batch_with_an_oversized_event_appends_nothing(kafka_bootstrap: str, topics: Topics) -> None:
    task = ev.task_created("oversized")
    assert task.task_id is not None
    row = job(task.task_id)
    ids = {"job_id": uuid.UUID(row.job_id), "task_id": task.task_id}
    small = Envelope.wrap(
        JobStarted(**ids, worker="w", teacher_model="m", judge_model="m"), source="optimizer"
    )
    huge = Envelope.wrap(
        PromptVersionCreated(prompt_version_id=uuid.uuid4(), **ids, prompt_text="p" * (MAX_EVENT_BYTES + 1)),
        source="optimizer",
    )
    log = EventLog(kafka_bootstrap, topics, client_id="tests")
    try:
        with pytest.raises(EventTooLarge):
            await log.append_all([small, huge])
    finally:
        await log.stop()
    assert await records_of(kafka_bootstrap, topics, row.job_id) == []
