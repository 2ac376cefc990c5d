"""Prompt versions."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.schemas.common import UtcDateTime
from shared.events.prompts import PromptSource
from shared.prompt_contract import MAX_PROMPT_CHARS


class PromptVersionResponse(BaseModel):
    id: uuid.UUID
    task_id: uuid.UUID
    version_number: int
    prompt_text: str
    demos: list[dict[str, Any]]
    eval_score: float | None
    test_score: float | None = Field(description="The export's score on the job's held-out test split.")
    status: Literal["draft", "active", "archived"]
    source: PromptSource = Field(
        description="`job` (a job's export), `user` (registered through the API or `kaizen prompts push`) "
        "or `repository` (imported from the task's Git repository)."
    )
    optimizer: str
    dspy_version: str | None
    created_at: UtcDateTime
    job_id: uuid.UUID | None

    @classmethod
    def from_row(cls, row: Any) -> PromptVersionResponse:
        return cls.model_validate({name: getattr(row, name) for name in cls.model_fields})


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version_id: uuid.UUID


class PromptRegistration(BaseModel):
    """The prompt an application runs today, registered as a version (the baseline jobs beat)."""

    model_config = ConfigDict(extra="forbid")

    prompt_text: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="The prompt file's exact content, valid under the task's `prompt_contract`.",
        examples=["Is the following text positive or negative? Answer with one word.\nText: {text}\nAnswer:"],
    )
    activate: bool = Field(
        True, strict=True, description="Make it the active prompt at once (the application runs it already)."
    )
