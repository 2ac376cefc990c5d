"""Feedback on a task's outputs, and seed uploads."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.api.schemas.common import UtcDateTime
from shared.events.feedback import FeedbackSource


class FeedbackCreate(BaseModel):
    """One scored output. ``inputs`` must match the task's schema exactly when it has one."""

    model_config = ConfigDict(extra="forbid")

    task_id: uuid.UUID
    inputs: dict[str, Any] = Field(examples=[{"ticket": "My invoice is wrong"}])
    output: str = Field(examples=["The customer reports a wrong invoice."])
    score: float = Field(ge=0, le=1, examples=[0.9])
    source: FeedbackSource = "sdk"
    metadata: dict[str, Any] = Field(default_factory=dict)


class FeedbackResponse(BaseModel):
    id: uuid.UUID
    task_id: uuid.UUID
    inputs: dict[str, Any]
    output: str
    score: float
    source: FeedbackSource
    metadata: dict[str, Any]
    created_at: UtcDateTime

    @classmethod
    def from_row(cls, row: Any) -> FeedbackResponse:
        return cls.model_validate({name: getattr(row, name) for name in cls.model_fields})


class SeedLineError(BaseModel):
    line: int
    message: str


class SeedUploadResult(BaseModel):
    """What an upload added; ``errors`` lists the first 20 rejected lines."""

    upload_id: uuid.UUID
    accepted: int
    rejected: int
    errors: list[SeedLineError]
    total_seeds: int = Field(description="Seeds the task has now.")
    seed_limit: int
