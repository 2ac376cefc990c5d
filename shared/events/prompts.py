"""Prompt version events."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field

from shared.events.base import Event

PromptSource = Literal["job", "user", "repository"]


class PromptVersionCreated(Event):
    """A prompt version (a draft) was stored. ``prompt_text`` is exactly the file content.

    ``source`` says where it came from: a job's export, a user's registration
    (``POST /api/v1/prompts/{task_id}``), or the file imported from the task's repository.
    """

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
    source: PromptSource = "job"
    test_score: float | None = Field(None, description="The export's score on the held-out test split.")


class PromptActivated(Event):
    """A draft version became the task's active prompt; the previous one is archived."""

    TYPE = "kaizen.prompt.activated.v1"
    task_id: uuid.UUID
    prompt_version_id: uuid.UUID
