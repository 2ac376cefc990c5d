"""Typed models of the Kaizen API, named as in its OpenAPI document (``/openapi.json``).

Written by hand and checked against the server's document by a test (field names and
required-ness). Answers ignore fields this version does not know, so a newer server
never breaks an older client; requests send only the fields the caller set.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FeedbackSource = Literal["sdk", "user_rating", "auto_eval", "seed"]
JobStatus = Literal["PENDING", "RUNNING", "EVALUATING", "COMPILING", "SUCCESS", "FAILED", "PR_FAILED"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"SUCCESS", "FAILED", "PR_FAILED"})
KeyRole = Literal["ingest", "read", "admin"]
GitProvider = Literal["github", "gitlab"]
ModuleType = Literal["predict", "chain_of_thought"]
Mode = Literal["optimize_only", "auto_pr"]
PromptFormat = Literal["text", "json", "yaml", "python"]
PromptContract = Literal["system", "template", "messages"]
Optimizer = Literal["mipro", "gepa"]


class Answer(BaseModel):
    """What the server sends: unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Request(BaseModel):
    """What the client sends: unknown fields are a mistake of the caller."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- problems ----------------------------------------------------------------------------


class FieldErrorOut(Answer):
    field: str
    message: str


class Problem(BaseModel):
    """An RFC 7807 problem (``application/problem+json``); extension members are kept."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str


class ValidationProblem(Problem):
    errors: list[FieldErrorOut]


class ItemProblem(Problem):
    errors: list[FieldErrorOut] = []


class SeedLineError(Answer):
    line: int
    message: str


class SeedsRejected(Problem):
    errors: list[FieldErrorOut | SeedLineError]


# --- keys ----------------------------------------------------------------------------------


class BootstrapCreate(Request):
    name: str


class KeyCreate(Request):
    name: str
    role: KeyRole


class KeyCreated(Answer):
    id: uuid.UUID
    name: str
    role: KeyRole
    key: str
    prefix: str
    created_at: datetime


class KeyInfo(Answer):
    id: uuid.UUID
    name: str
    role: KeyRole
    prefix: str
    status: Literal["active", "revoked"]
    bootstrap: bool
    created_at: datetime
    revoked_at: datetime | None


# --- tasks ---------------------------------------------------------------------------------


class _TaskSettings(Request):
    description: str | None = None
    #: ``schema_json`` on the wire; named otherwise here because it would shadow a BaseModel method.
    input_schema: list[str] | dict[str, Any] | None = Field(None, alias="schema_json")
    teacher_model: str | None = None
    judge_model: str | None = None
    cost_budget: float | None = None
    git_provider: GitProvider | None = None
    git_base_url: str | None = None
    git_repo: str | None = None
    git_base_branch: str | None = None
    git_token: str | None = None
    prompt_path: str | None = None
    prompt_locator: str | None = None


class TaskCreate(_TaskSettings):
    name: str
    evaluator_config: dict[str, Any] | None = None
    feedback_threshold: int = 50
    module_type: ModuleType = "predict"
    mode: Mode = "optimize_only"
    prompt_format: PromptFormat = "text"
    prompt_contract: PromptContract = "system"
    optimizer: Optimizer = "mipro"


class TaskUpdate(_TaskSettings):
    name: str | None = None
    evaluator_config: dict[str, Any] | None = None
    feedback_threshold: int | None = None
    module_type: ModuleType | None = None
    mode: Mode | None = None
    prompt_format: PromptFormat | None = None
    prompt_contract: PromptContract | None = None
    optimizer: Optimizer | None = None


class ThresholdProgress(Answer):
    progress: float
    feedback_since_last_job: int
    threshold: int


class JobSummary(Answer):
    id: uuid.UUID
    status: str
    triggered_by: str
    pr_url: str | None
    created_at: datetime
    completed_at: datetime | None


class TaskResponse(Answer):
    id: uuid.UUID
    name: str
    description: str | None
    input_schema: list[str] | dict[str, Any] | None = Field(alias="schema_json")
    feedback_threshold: int
    teacher_model: str | None
    judge_model: str | None
    module_type: ModuleType
    evaluator_config: dict[str, Any]
    cost_budget: float | None
    mode: Mode
    git_provider: GitProvider | None
    git_base_url: str | None
    git_repo: str | None
    git_base_branch: str | None
    git_token_set: bool
    prompt_path: str | None
    prompt_format: PromptFormat
    prompt_locator: str | None
    prompt_contract: PromptContract
    optimizer: Optimizer
    feedback_count: int
    threshold_progress: ThresholdProgress
    last_optimization: JobSummary | None
    active_prompt_score: float | None
    created_at: datetime
    updated_at: datetime


class TaskPage(Answer):
    items: list[TaskResponse]
    next_cursor: str | None


# --- feedback ------------------------------------------------------------------------------


class FeedbackCreate(Request):
    task_id: uuid.UUID
    inputs: dict[str, Any]
    output: str
    score: float
    source: FeedbackSource = "sdk"
    metadata: dict[str, Any] = {}


class FeedbackBatch(Request):
    items: list[FeedbackCreate]


class FeedbackItemResult(Answer):
    index: int
    status: int
    id: uuid.UUID | None = None
    problem: ItemProblem | None = None


class FeedbackBatchResult(Answer):
    accepted: int
    refused: int
    results: list[FeedbackItemResult]


class FeedbackResponse(Answer):
    id: uuid.UUID
    task_id: uuid.UUID
    inputs: dict[str, Any]
    output: str
    score: float
    source: FeedbackSource
    metadata: dict[str, Any]
    created_at: datetime


class SeedUploadResult(Answer):
    upload_id: uuid.UUID
    accepted: int
    rejected: int
    errors: list[SeedLineError]
    total_seeds: int
    seed_limit: int


# --- jobs ----------------------------------------------------------------------------------


class JobResponse(Answer):
    id: uuid.UUID
    task_id: uuid.UUID
    prompt_version_id: uuid.UUID | None
    status: JobStatus
    triggered_by: Literal["auto_threshold", "api_on_demand"]
    feedback_count: int
    pr_url: str | None
    error_message: str | None
    job_metadata: dict[str, Any]
    progress_step: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobEvent(Answer):
    type: str
    time: datetime
    source: str
    data: dict[str, Any]
    correlation_id: str | None
    causation_id: str | None
    offset: int


class CostEstimateOut(Answer):
    estimated_cost_usd: float
    estimated_llm_calls: int
    train_size: int
    val_size: int
    max_trials: int
    teacher_model: str
    judge_model: str
    task_model: str
    unpriced_models: list[str]
    assumptions: str


class OptimizeResponse(Answer):
    job: JobResponse
    cost_estimate: CostEstimateOut
    budget_warning: str | None


class OptimizeEstimate(Answer):
    cost_estimate: CostEstimateOut
    budget_warning: str | None
    feedback_count: int
    usable_examples: int


# --- prompts -------------------------------------------------------------------------------


class PromptRegistration(Request):
    prompt_text: str
    activate: bool = True


class ActivateRequest(Request):
    version_id: uuid.UUID


class PromptVersionResponse(Answer):
    id: uuid.UUID
    task_id: uuid.UUID
    version_number: int
    prompt_text: str
    demos: list[dict[str, Any]]
    eval_score: float | None
    test_score: float | None
    status: Literal["draft", "active", "archived"]
    source: Literal["job", "user", "repository"]
    optimizer: str
    dspy_version: str | None
    created_at: datetime
    job_id: uuid.UUID | None


# --- health --------------------------------------------------------------------------------


class HealthStatus(Answer):
    status: Literal["ok", "degraded"]


class KafkaHealth(Answer):
    reachable: bool
    error: str | None = None


class PartitionLag(Answer):
    topic: str
    partition: int
    end_offset: int
    projected_offset: int
    lag: int


class ProjectorHealth(Answer):
    lag: int | None
    partitions: list[PartitionLag]


class LoopHealth(Answer):
    name: str
    alive: bool
    last_progress: datetime
    seconds_since_progress: float
    busy_seconds: float | None
    failures: int
    stuck: bool


class ServiceHealth(Answer):
    service: str
    instance: str
    last_heartbeat: datetime
    age_seconds: float
    alive: bool
    loops: list[LoopHealth] = []


class MetricsEndpoint(Answer):
    service: str
    host: str
    port: int | None
    path: str = "/metrics"


class HealthResponse(Answer):
    status: Literal["ok", "degraded"]
    kafka: KafkaHealth
    database: bool
    projector: ProjectorHealth
    services: list[ServiceHealth]
    loops: list[LoopHealth] = []
    metrics: list[MetricsEndpoint] = []
    warnings: list[str]


# --- webhooks ------------------------------------------------------------------------------

DeliveryOutcome = Literal["delivered", "retrying", "dead"]


class WebhookCreate(Request):
    url: str
    types: list[str] | None = None
    task_id: uuid.UUID | None = None


class WebhookInfo(Answer):
    id: uuid.UUID
    url: str
    types: list[str]
    task_id: uuid.UUID | None
    created_at: datetime


class WebhookCreated(WebhookInfo):
    """``secret`` is in this answer only: store it now (docs/webhooks.md)."""

    secret: str


class WebhookDelivery(Answer):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    task_id: uuid.UUID
    job_id: uuid.UUID | None
    attempt: int
    outcome: DeliveryOutcome
    status_code: int | None
    error: str | None
    response_snippet: str | None
    duration_ms: float
    retry_in_seconds: float | None
    attempted_at: datetime
