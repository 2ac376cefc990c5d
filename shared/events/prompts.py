"""Prompt version events."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from shared.events.base import Event


class PromptVersionCreated(Event):
    """A job produced a prompt version (a draft). ``prompt_text`` is exactly the file content."""

    TYPE = "kaizen.prompt.version_created.v1"
    prompt_version_id: uuid.UUID
    task_id: uuid.UUID
    job_id: uuid.UUID | None
    prompt_text: str
    demos: list[dict[str, Any]] = Field(default_factory=list)
    dspy_state: dict[str, Any] = Field(default_factory=dict)
    eval_score: float | None = Field(None, description="The export re-score on the validation set.")
    baseline_score: float | None = None
    optimized_score: float | None = None
    optimizer: str = "MIPROv2"
    dspy_version: str | None = None


class PromptActivated(Event):
    """A draft version became the task's active prompt; the previous one is archived."""

    TYPE = "kaizen.prompt.activated.v1"
    task_id: uuid.UUID
    prompt_version_id: uuid.UUID
