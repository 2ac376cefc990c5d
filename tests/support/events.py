"""Builders of realistic event histories for tests (as the services would emit them)."""

from __future__ import annotations

import uuid

from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.events.jobs import (
    JobCompiled,
    JobCompiling,
    JobEvaluating,
    JobFailed,
    JobRequested,
    JobStarted,
    JobSucceeded,
    JobTrialCompleted,
)
from shared.events.prompts import PromptVersionCreated
from shared.events.prs import PrCreated, PrFailed
from shared.events.tasks import TaskCreated


def task_created(name: str = "summarize-ticket", **settings: object) -> Envelope:
    event = TaskCreated(task_id=uuid.uuid4(), name=name, request_id=uuid.uuid4().hex, **settings)  # type: ignore[arg-type]
    return Envelope.wrap(event, source="api", correlation_id=event.request_id)


def feedback(task_id: uuid.UUID, n: int, score: float = 0.9) -> list[Envelope]:
    return [
        Envelope.wrap(
            FeedbackRecorded(
                feedback_id=uuid.uuid4(),
                task_id=task_id,
                inputs={"text": f"ticket {i}"},
                output=f"summary {i}",
                score=score,
            ),
            source="api",
        )
        for i in range(n)
    ]


def job_lifecycle(task_id: uuid.UUID, outcome: str = "success", trials: int = 3) -> list[Envelope]:
    """A whole job: requested → … → SUCCESS, FAILED or PR_FAILED ("publish": compiled, awaiting its PR)."""
    job_id = uuid.uuid4()
    version_id = uuid.uuid4()
    ids = {"job_id": job_id, "task_id": task_id}
    chain: list[Envelope] = []

    def add(event: object, source: str = "optimizer") -> None:
        cause = chain[-1] if chain else None
        chain.append(Envelope.wrap(event, source=source, causation=cause, correlation_id=str(job_id)))  # type: ignore[arg-type]

    add(JobRequested(**ids, triggered_by="auto_threshold", feedback_count=52, log_offset=10))
    add(JobStarted(**ids, worker="w1", teacher_model="openai/smollm2", judge_model="openai/smollm2"))
    add(
        JobEvaluating(
            **ids, feedback_count=52, seed_count=0, train_size=41, val_size=11, dataset_hash="ab" * 32
        )
    )
    add(JobCompiling(**ids, baseline_score=0.5))
    if outcome == "failed":
        add(
            JobFailed(
                **ids, error_message="LLM endpoint http://127.0.0.1:1/v1 unreachable", kind="llm_unreachable"
            )
        )
        return chain
    for trial in range(1, trials + 1):
        add(
            JobTrialCompleted(
                **ids, trial=trial, total_trials=trials, score=0.5 + trial / 10, best_score=0.5 + trial / 10
            )
        )
    add(
        PromptVersionCreated(
            prompt_version_id=version_id,
            task_id=task_id,
            job_id=job_id,
            prompt_text="Summarize.",
            eval_score=0.8,
        )
    )
    meta = {"trials_completed": trials, "duration_seconds": 184.0, "cost_usd": 0.0, "optimized_score": 0.8}
    add(JobCompiled(**ids, prompt_version_id=version_id, job_metadata=meta, publish=outcome != "success"))
    if outcome == "success":
        add(JobSucceeded(**ids))
    elif outcome == "pr_failed":
        add(
            PrFailed(**ids, reason="the Git token was rejected (401)", retryable=False), source="pr_publisher"
        )
    elif outcome == "pr_created":
        add(
            PrCreated(**ids, pr_url="http://git.test/o/r/pull/1", number=1, branch="kaizen/x"),
            source="pr_publisher",
        )
    return chain
