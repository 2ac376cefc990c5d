"""Tasks: what a user configures, and what the API shows (never the Git token itself)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from services.api.schemas.common import UtcDateTime, without_null
from shared.evaluator_config import validate_evaluator_config
from shared.events.tasks import (
    GitProvider,
    ModuleType,
    OptimizerName,
    PromptContract,
    PromptFormat,
    TaskMode,
)
from shared.git_policy import prompt_path_problem
from shared.model_policy import MAX_MODEL_CHARS

#: Settings shown as they are stored (the Git token is shown only as ``git_token_set``).
SHOWN_SETTINGS = (
    "name",
    "description",
    "input_schema",
    "feedback_threshold",
    "teacher_model",
    "judge_model",
    "module_type",
    "evaluator_config",
    "cost_budget",
    "mode",
    "git_provider",
    "git_base_url",
    "git_repo",
    "git_base_branch",
    "prompt_path",
    "prompt_format",
    "prompt_locator",
    "prompt_contract",
    "optimizer",
)

PROMPT_CONTRACT_DOC = (
    "How the application sends the prompt file to the model (docs/contracts.md): `system` (the file "
    "is the system message, the inputs the user message), `template` (a user-message template with "
    "`{field}` placeholders) or `messages` (a JSON/YAML list of chat messages with placeholders)."
)
OPTIMIZER_DOC = "The DSPy optimizer a job runs: `mipro` (MIPROv2) or `gepa` (GEPA)."


class _TaskFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, examples=["Summarize a support ticket in one sentence."])
    # Named like the event field: ``schema_json`` would shadow a BaseModel method.
    input_schema: list[str] | dict[str, Any] | None = Field(
        None,
        alias="schema_json",
        description="The task's input fields: a list of names, or an object whose keys (or JSON Schema "
        "`properties`) name them. Feedback inputs must then match it exactly.",
        examples=[["ticket"]],
    )
    teacher_model: str | None = Field(
        None,
        max_length=MAX_MODEL_CHARS,
        description="LiteLLM model string; default: the server's. It must match the server's "
        "KAIZEN_ALLOWED_MODELS and must not be a URL.",
        examples=["openai/gpt-4o-mini"],
    )
    judge_model: str | None = Field(
        None,
        max_length=MAX_MODEL_CHARS,
        description="LiteLLM model string of the LLM judge (same rules as teacher_model).",
    )
    evaluator_config: dict[str, Any] | None = Field(
        None,
        description="Run options: metric (auto, label_match, llm_judge, exact_match, contains, regex, or "
        "a server-registered name), metric_options, auto, max_trials, max_bootstrapped_demos, "
        "max_labeled_demos, min_score_for_gold, num_threads, max_tokens, task_model (same rules as "
        "teacher_model). Unknown keys are refused (docs/scores.md).",
    )
    cost_budget: float | None = Field(
        None,
        ge=0,
        description="USD a job may spend at most. Refused when a model the job uses has no known "
        "price (the budget could not be enforced) unless the operator prices it in KAIZEN_MODEL_PRICES.",
    )
    git_provider: GitProvider | None = None
    git_base_url: str | None = Field(
        None,
        max_length=2048,
        description="Self-hosted GitLab or GitHub Enterprise URL; its origin must be listed in the "
        "server's KAIZEN_GIT_HOSTS. Changing it (or git_provider, git_repo) clears the stored token "
        "unless a new git_token comes with the change.",
    )
    git_repo: str | None = Field(None, examples=["myorg/myrepo"])
    git_base_branch: str | None = Field(None, examples=["main"])
    git_token: SecretStr | None = Field(
        None, min_length=1, description="Write-only: stored encrypted, never returned (see `git_token_set`)."
    )
    prompt_path: str | None = Field(
        None,
        max_length=1024,
        description="The prompt file, relative to the repository root and normalized "
        "(no `..`, `.`, leading `/` or backslashes).",
        examples=["prompts/summarize.txt"],
    )
    prompt_locator: str | None = Field(
        None, description="Where the prompt sits inside a json/yaml/python file."
    )

    @field_validator("evaluator_config")
    @classmethod
    def _evaluator_config_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # One rule for the API and the optimizer: a job never fails late on a setting accepted here.
        if value is not None and (problems := validate_evaluator_config(value)):
            raise ValueError("; ".join(f"{where}: {message}" for where, message in problems))
        return value

    @field_validator("prompt_path")
    @classmethod
    def _prompt_path_is_relative(cls, value: str | None) -> str | None:
        # The publisher checks again with the same rule: older tasks may predate it.
        if value is not None and (problem := prompt_path_problem(value)):
            raise ValueError(problem)
        return value


class TaskCreate(_TaskFields):
    """A new task. ``auto_pr`` mode needs git_provider, git_repo, git_token and prompt_path."""

    name: str = Field(min_length=1, max_length=255, examples=["summarize-ticket"])
    feedback_threshold: int = Field(50, ge=1, description="Live feedback that triggers an optimization.")
    module_type: ModuleType = "predict"
    mode: TaskMode = "optimize_only"
    prompt_format: PromptFormat = "text"
    prompt_contract: PromptContract = Field("system", description=PROMPT_CONTRACT_DOC)
    optimizer: OptimizerName = Field("mipro", description=OPTIMIZER_DOC)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


#: Settings that always have a value: ``null`` is refused for them in an update.
NOT_NULLABLE = (
    "name",
    "feedback_threshold",
    "module_type",
    "mode",
    "prompt_format",
    "evaluator_config",
    "prompt_contract",
    "optimizer",
)


def _not_nullable(schema: dict[str, Any]) -> None:
    # Left out, they keep their value; null would clear them, which they cannot be (a 422).
    properties = schema["properties"]
    for name in NOT_NULLABLE:
        properties[name] = without_null(properties[name])


class TaskUpdate(_TaskFields):
    """Changed settings only; ``null`` clears an optional setting. The name cannot change."""

    model_config = ConfigDict(json_schema_extra=_not_nullable)

    name: str | None = Field(None, description="Read-only: only the current name is accepted.")
    feedback_threshold: int | None = Field(None, ge=1)
    module_type: ModuleType | None = None
    mode: TaskMode | None = None
    prompt_format: PromptFormat | None = None
    prompt_contract: PromptContract | None = Field(None, description=PROMPT_CONTRACT_DOC)
    optimizer: OptimizerName | None = Field(None, description=OPTIMIZER_DOC)


class ThresholdProgress(BaseModel):
    progress: float = Field(description="Live feedback since the last job's cut-off / feedback_threshold.")
    feedback_since_last_job: int
    threshold: int


class JobSummary(BaseModel):
    id: uuid.UUID
    status: str
    triggered_by: str
    pr_url: str | None
    created_at: UtcDateTime
    completed_at: UtcDateTime | None


class TaskResponse(BaseModel):
    """A task with its live figures."""

    model_config = ConfigDict(validate_by_name=True)

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
    mode: TaskMode
    git_provider: GitProvider | None
    git_base_url: str | None
    git_repo: str | None
    git_base_branch: str | None
    git_token_set: bool
    prompt_path: str | None
    prompt_format: PromptFormat
    prompt_locator: str | None
    prompt_contract: PromptContract = Field(description=PROMPT_CONTRACT_DOC)
    optimizer: OptimizerName = Field(description=OPTIMIZER_DOC)
    feedback_count: int = Field(description="Live feedback (sources other than seed).")
    threshold_progress: ThresholdProgress
    last_optimization: JobSummary | None
    active_prompt_score: float | None
    created_at: UtcDateTime
    updated_at: UtcDateTime

    @field_validator("prompt_contract", "optimizer", mode="before")
    @classmethod
    def _default_for_older_tasks(cls, value: Any, info: ValidationInfo) -> Any:
        # A task projected before these settings existed has no value stored: it has
        # always behaved as the defaults, which is what a replay of its events stores too.
        return TaskCreate.model_fields[str(info.field_name)].default if value is None else value


class TaskPage(BaseModel):
    items: list[TaskResponse]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
