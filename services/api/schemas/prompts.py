"""Prompt versions."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from services.api.schemas.common import UtcDateTime


class PromptVersionResponse(BaseModel):
    id: uuid.UUID
    task_id: uuid.UUID
    version_number: int
    prompt_text: str
    demos: list[dict[str, Any]]
    eval_score: float | None
    status: Literal["draft", "active", "archived"]
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
