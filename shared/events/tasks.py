"""Task lifecycle events: a task is one LLM feature whose prompt Kaizen improves."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import Event

ModuleType = Literal["predict", "chain_of_thought"]
TaskMode = Literal["optimize_only", "auto_pr"]
GitProvider = Literal["github", "gitlab"]
PromptFormat = Literal["text", "json", "yaml", "python"]
PromptContract = Literal["system", "template", "messages"]
OptimizerName = Literal["mipro", "gepa"]


def input_field_names(schema: list[str] | dict[str, Any] | None) -> list[str] | None:
    """The input field names a schema declares (a list of names, an object, or a JSON Schema)."""
    if schema is None:
        return None
    if isinstance(schema, list):
        return [str(name) for name in schema]
    properties = schema.get("properties")
    if isinstance(properties, dict):
        return [str(name) for name in properties]
    return [str(name) for name in schema]


class TaskSettings(BaseModel):
    """Everything a user configures on a task. ``git_token_encrypted`` is Fernet ciphertext."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    input_schema: list[str] | dict[str, Any] | None = Field(
        None, description="The API's `schema_json`: input field names, or an object whose keys name them."
    )
    feedback_threshold: int = Field(50, ge=1)
    teacher_model: str | None = None
    judge_model: str | None = None
    module_type: ModuleType = "predict"
    evaluator_config: dict[str, Any] = Field(default_factory=dict)
    cost_budget: float | None = Field(None, ge=0)
    mode: TaskMode = "optimize_only"
    git_provider: GitProvider | None = None
    git_base_url: str | None = None
    git_repo: str | None = None
    git_base_branch: str | None = None
    git_token_encrypted: str | None = Field(None, description="Fernet ciphertext; never the token in clear.")
    prompt_path: str | None = None
    prompt_format: PromptFormat = "text"
    prompt_locator: str | None = None
    prompt_contract: PromptContract = Field(
        "system",
        description=(
            "How the application sends the prompt file to the model: `system` (the file is the system "
            "message, the inputs the user message), `template` (a user-message template with `{field}` "
            "placeholders) or `messages` (a JSON/YAML list of chat messages with placeholders)."
        ),
    )
    optimizer: OptimizerName = Field("mipro", description="The DSPy optimizer a job runs: MIPROv2 or GEPA.")


class TaskCreated(TaskSettings, Event):
    """A task was created. ``task_id`` is derived from the name and its generation."""

    TYPE = "kaizen.task.created.v1"
    task_id: uuid.UUID
    request_id: str = Field(description="The request that created it; a racing duplicate has another.")


class TaskUpdated(Event):
    """Some settings of a task changed; ``changes`` holds only the changed fields."""

    TYPE = "kaizen.task.updated.v1"
    task_id: uuid.UUID
    changes: dict[str, Any]


class TaskDeleted(Event):
    """A task was deleted; its history stays in the log."""

    TYPE = "kaizen.task.deleted.v1"
    task_id: uuid.UUID
