"""Jobs: the seed document's ``JobResponse``, a job's event history, and the optimize answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.api.schemas.common import UtcDateTime

JobStatus = Literal["PENDING", "RUNNING", "EVALUATING", "COMPILING", "SUCCESS", "FAILED", "PR_FAILED"]

JOB_EXAMPLE: dict[str, Any] = {
    "id": "f1e2d3c4-b5a6-7890-fedc-ba0987654321",
    "task_id": "550e8400-e29b-41d4-a716-446655440000",
    "prompt_version_id": "c3d4e5f6-a7b8-9012-cdef-012345678901",
    "status": "SUCCESS",
    "triggered_by": "auto_threshold",
    "feedback_count": 52,
    "pr_url": "https://github.com/myorg/myrepo/pull/42",
    "error_message": None,
    "job_metadata": {
        "teacher_model": "gpt-4o",
        "judge_model": "gpt-4o-mini",
        "trials_completed": 10,
        "duration_seconds": 184,
        "train_size": 41,
        "val_size": 11,
        "cost_usd": 0.34,
    },
    "progress_step": "pr_created",
    "started_at": "2024-01-15T10:30:00Z",
    "completed_at": "2024-01-15T10:33:04Z",
    "created_at": "2024-01-15T10:29:55Z",
}


class JobResponse(BaseModel):
    """An optimization job, exactly as the Jobs API page documents it."""

    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    id: uuid.UUID = Field(description="Job unique identifier")
    task_id: uuid.UUID = Field(description="Task this job ran for")
    prompt_version_id: uuid.UUID | None = Field(
        description="ID of the prompt version created by this job (null until completion)"
    )
    status: JobStatus = Field(description="Current job status (see Job Statuses)")
    triggered_by: Literal["auto_threshold", "api_on_demand"] = Field(
        description='"auto_threshold" or "api_on_demand"'
    )
    feedback_count: int = Field(description="Number of feedback entries used for training")
    pr_url: str | None = Field(description="GitHub/GitLab PR URL (null if not yet created)")
    error_message: str | None = Field(description="Error details if job failed")
    job_metadata: dict[str, Any] = Field(
        description="Optimization metadata: models, trial count, duration, cost"
    )
    progress_step: str | None = Field(description="Current or final step description")
    started_at: UtcDateTime | None = Field(description="When the worker started processing")
    completed_at: UtcDateTime | None = Field(description="When the job finished")
    created_at: UtcDateTime = Field(description="When the job was created")

    @classmethod
    def from_row(cls, row: Any) -> JobResponse:
        """The answer for one row of ``jobs`` (its columns beyond the fields are ignored)."""
        return cls.model_validate(_fields(row))

    @classmethod
    def from_rows(cls, rows: Iterable[Any]) -> list[JobResponse]:
        """The answers for a page of rows, validated as one list (what a job list builds)."""
        return _JOB_LIST.validate_python([_fields(row) for row in rows])


def _fields(row: Any) -> dict[str, Any]:
    """A row's columns by name. ``zip`` over ``Row._fields`` takes half the time of
    ``{**row._mapping}``, which was a tenth of the job list's CPU (bench/README.md)."""
    fields = dict(zip(row._fields, row, strict=True))
    if fields["job_metadata"] is None:
        fields["job_metadata"] = {}
    return fields


#: One validator for a page: a list validated at once costs less than a model per row.
_JOB_LIST: TypeAdapter[list[JobResponse]] = TypeAdapter(list[JobResponse])


class JobEvent(BaseModel):
    """One event of a job's history, in log order."""

    type: str = Field(examples=["kaizen.job.compiled.v1"])
    time: UtcDateTime
    source: str = Field(examples=["optimizer"])
    data: dict[str, Any]
    correlation_id: str | None
    causation_id: str | None
    offset: int = Field(description="The event's offset in the task's partition (its SSE id).")

    @classmethod
    def from_row(cls, row: Any) -> JobEvent:
        return cls(
            type=row.type,
            time=row.time,
            source=row.source,
            data=row.data,
            correlation_id=row.correlation_id,
            causation_id=row.causation_id,
            offset=row.log_offset,
        )


class CostEstimateOut(BaseModel):
    """``shared.llm.pricing.estimate_job_cost`` before the job runs."""

    estimated_cost_usd: float
    estimated_llm_calls: int
    train_size: int
    val_size: int
    max_trials: int
    teacher_model: str
    judge_model: str
    task_model: str
    unpriced_models: list[str] = Field(description="Models without a known price (not in the estimate).")
    assumptions: str


class OptimizeResponse(BaseModel):
    """The job that was created, what it will probably cost, and whether that breaks the budget."""

    job: JobResponse
    cost_estimate: CostEstimateOut
    budget_warning: str | None = Field(description="Set when the estimate exceeds the task's cost_budget.")


class OptimizeEstimate(BaseModel):
    """What ``POST /optimize/{task_id}`` would estimate now; nothing is started."""

    cost_estimate: CostEstimateOut
    budget_warning: str | None = Field(description="Set when the estimate exceeds the task's cost_budget.")
    feedback_count: int = Field(description="The task's feedback and seeds.")
    usable_examples: int = Field(
        description="Those scored at least min_score_for_gold: the examples the estimate splits."
    )
