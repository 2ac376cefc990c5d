"""Job events: an optimization job from request to a terminal state.

A job's status is a fold of these events (see ``shared.readmodel.jobs``):
``JobRequested`` → PENDING, ``JobStarted`` → RUNNING, ``JobEvaluating`` → EVALUATING,
``JobCompiling`` → COMPILING, ``JobSucceeded`` → SUCCESS, ``JobFailed`` → FAILED,
``PrFailed`` → PR_FAILED.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field

from shared.events.base import Event

TriggeredBy = Literal["auto_threshold", "api_on_demand"]


class OptimizationRequested(Event):
    """Someone asked to optimize a task now. The optimizer decides: a job or a rejection."""

    TYPE = "kaizen.job.optimization_requested.v1"
    task_id: uuid.UUID
    job_id: uuid.UUID = Field(description="The id the job will have if the request is accepted.")


class OptimizationRejected(Event):
    """An optimize request was refused, e.g. because a job of the task is active."""

    TYPE = "kaizen.job.optimization_rejected.v1"
    task_id: uuid.UUID
    job_id: uuid.UUID
    reason: Literal["job_active", "no_usable_feedback", "task_missing"]
    detail: str
    active_job_id: uuid.UUID | None = None


class JobRequested(Event):
    """A job was created (PENDING). Auto jobs' ids derive from the task and the crossing offset."""

    TYPE = "kaizen.job.requested.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    triggered_by: TriggeredBy
    feedback_count: int = Field(ge=0, description="Live feedback since the last successful job.")
    log_offset: int = Field(ge=0, description="Offset of the triggering event: the job's data cut-off.")


class JobStarted(Event):
    """A worker started (or restarted, ``attempt`` > 1) the job (RUNNING)."""

    TYPE = "kaizen.job.started.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    attempt: int = Field(1, ge=1)
    worker: str
    teacher_model: str
    judge_model: str


class JobEvaluating(Event):
    """The data is loaded and split; the current prompt is being scored (EVALUATING)."""

    TYPE = "kaizen.job.evaluating.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    feedback_count: int = Field(ge=0)
    seed_count: int = Field(ge=0)
    train_size: int = Field(ge=0)
    val_size: int = Field(ge=0)
    test_size: int = Field(0, ge=0, description="Held out until the end; 0 below 60 usable examples.")
    dataset_hash: str


class JobCompiling(Event):
    """The baseline is measured; MIPROv2 is compiling (COMPILING)."""

    TYPE = "kaizen.job.compiling.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    baseline_score: float


class JobExporting(Event):
    """Compiling is done; the candidates are re-scored as the application calls the model (COMPILING).

    Often most of a job on a small local model: without it the job would show its last
    trial for the whole re-scoring.
    """

    TYPE = "kaizen.job.exporting.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    candidates: int = Field(ge=0, description="How many rendered candidates are re-scored.")


class JobTrialCompleted(Event):
    """One MIPROv2 trial finished; usage figures are totals so far."""

    TYPE = "kaizen.job.trial_completed.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    trial: int = Field(ge=1)
    total_trials: int | None = None
    score: float
    best_score: float
    llm_calls: int = 0
    cost_usd: float = 0.0


class JobCompiled(Event):
    """Compilation and the export re-score are done; the prompt version exists.

    ``job_metadata`` holds the measured figures (see DESIGN §5). ``publish`` says whether
    the PR publisher takes over (task in ``auto_pr`` mode with Git configured).
    """

    TYPE = "kaizen.job.compiled.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    prompt_version_id: uuid.UUID
    job_metadata: dict[str, Any]
    examples: list[dict[str, Any]] = Field(default_factory=list, description="A few before/after examples.")
    publish: bool


class JobSucceeded(Event):
    """The job ended SUCCESS, with or without a PR."""

    TYPE = "kaizen.job.succeeded.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    progress_step: str = "completed"


class JobFailed(Event):
    """The job ended FAILED; ``error_message`` says what a person can do about it."""

    TYPE = "kaizen.job.failed.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    error_message: str
    kind: str = Field(description="cancelled, worker_lost, budget_exhausted, llm_unreachable, ...")
    progress_step: str = "failed"
    job_metadata: dict[str, Any] = Field(default_factory=dict)


class JobCancelRequested(Event):
    """Someone asked to cancel the job; it stops at the next safe point and ends FAILED."""

    TYPE = "kaizen.job.cancel_requested.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
