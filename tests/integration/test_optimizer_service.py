"""The optimizer service on a real broker: trigger, job runner, worker subprocess, events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.events.jobs import JobCancelRequested, OptimizationRequested
from shared.events.topics import Topics
from shared.readmodel.tables import prompt_versions
from tests.fakes.scripted_llm import ScriptedLLM, make_tickets
from tests.support import events as ev
from tests.support import system as sysmod
from tests.support.readmodel import job_history, rows, wait_for_job
from tests.support.system import running_system

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]
SMALL_RUN = {"auto": "light", "max_bootstrapped_demos": 2, "max_labeled_demos": 2, "metric": "exact_match"}


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as llm:
        previous = sysmod.OPTIONS
        sysmod.OPTIONS = sysmod.Options(
            llm_api_base=llm.api_base, default_model="openai/scripted", state_dir=tmp_path
        )
        try:
            yield llm
        finally:
            sysmod.OPTIONS = previous


def tickets(task_id: uuid.UUID, n: int, seed: int = 1) -> list[Envelope]:
    return [
        Envelope.wrap(
            FeedbackRecorded(
                feedback_id=uuid.uuid4(), task_id=task_id, inputs={"ticket": text}, output=label, score=0.9
            ),
            source="api",
        )
        for text, label in make_tickets(n, seed=seed)
    ]


async def test_the_threshold_starts_a_job_that_passes_every_stage_to_success(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, scripted: ScriptedLLM
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = ev.task_created(
        "tickets", feedback_threshold=25, input_schema=["ticket"], evaluator_config=SMALL_RUN
    )
    assert task.task_id is not None
    async with running_system(kafka_bootstrap, topics, db_url, ("projector", "optimizer")) as system:
        await system.append(task, *tickets(task.task_id, 30))
        job = await wait_for_job(
            db_url, lambda j: j["status"] in ("SUCCESS", "FAILED"), task_id=str(task.task_id)
        )
    assert job["status"] == "SUCCESS", job["error_message"]
    assert job["triggered_by"] == "auto_threshold"
    history = await job_history(db_url, job["id"])
    assert history[:4] == [
        "kaizen.job.requested.v1",
        "kaizen.job.started.v1",
        "kaizen.job.evaluating.v1",
        "kaizen.job.compiling.v1",
    ]
    assert "kaizen.job.trial_completed.v1" in history
    # The candidates' re-scoring is a step of its own, after the last trial.
    exporting = history.index("kaizen.job.exporting.v1")
    assert exporting > max(i for i, t in enumerate(history) if t == "kaizen.job.trial_completed.v1")
    assert history[-3:] == [
        "kaizen.prompt.version_created.v1",
        "kaizen.job.compiled.v1",
        "kaizen.job.succeeded.v1",
    ], history
    meta = job["job_metadata"]
    for key in (
        "teacher_model",
        "judge_model",
        "trials_completed",
        "duration_seconds",
        "train_size",
        "val_size",
        "cost_usd",
        "llm_calls",
        "tokens",
        "baseline_score",
        "optimized_score",
        "export_score",
        "optimizer",
        "dspy_version",
        "dataset_hash",
        "seed",
    ):
        assert meta.get(key) is not None, key
    assert meta["llm_calls"] == scripted.total_calls
    assert meta["train_size"] + meta["val_size"] == 25  # the data as of the crossing, not the 30 sent
    versions = await rows(db_url, prompt_versions)
    assert len(versions) == 1 and versions[0]["job_id"] == job["id"]


async def test_an_unreachable_llm_fails_the_job_naming_the_url(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    sysmod.OPTIONS = sysmod.Options(llm_api_base="http://127.0.0.1:9/v1", state_dir=tmp_path)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    task = ev.task_created(
        "tickets", feedback_threshold=100, input_schema=["ticket"], evaluator_config=SMALL_RUN
    )
    assert task.task_id is not None
    request = Envelope.wrap(
        OptimizationRequested(task_id=task.task_id, job_id=uuid.uuid4()), source="api", correlation_id="req-1"
    )
    try:
        async with running_system(kafka_bootstrap, topics, db_url, ("projector", "optimizer")) as system:
            await system.append(task, *tickets(task.task_id, 20), request)
            job = await wait_for_job(db_url, lambda j: j["status"] == "FAILED", task_id=str(task.task_id))
    finally:
        sysmod.OPTIONS = sysmod.Options()
    assert job["triggered_by"] == "api_on_demand"
    assert "http://127.0.0.1:9/v1" in job["error_message"]


async def test_cancelling_a_running_job_ends_it_failed_with_step_cancelled(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    with ScriptedLLM(delay=0.5) as slow:
        sysmod.OPTIONS = sysmod.Options(
            llm_api_base=slow.api_base, default_model="openai/scripted", state_dir=tmp_path
        )
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
        task = ev.task_created(
            "tickets", feedback_threshold=100, input_schema=["ticket"], evaluator_config=SMALL_RUN
        )
        assert task.task_id is not None
        job_id = uuid.uuid4()
        request = Envelope.wrap(OptimizationRequested(task_id=task.task_id, job_id=job_id), source="api")
        try:
            async with running_system(kafka_bootstrap, topics, db_url, ("projector", "optimizer")) as system:
                await system.append(task, *tickets(task.task_id, 20), request)
                await wait_for_job(
                    db_url, lambda j: j["status"] in ("EVALUATING", "COMPILING"), id=str(job_id)
                )
                await system.append(
                    Envelope.wrap(JobCancelRequested(job_id=job_id, task_id=task.task_id), source="api")
                )
                job = await wait_for_job(
                    db_url, lambda j: j["status"] == "FAILED", id=str(job_id), timeout=60
                )
        finally:
            sysmod.OPTIONS = sysmod.Options()
    assert job["progress_step"] == "cancelled"
    assert "cancel" in job["error_message"]
