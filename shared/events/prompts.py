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


ImportOutcome = Literal["imported", "unchanged", "failed"]


class PromptImportAttempted(Event):
    """The PR publisher read the task's prompt file from its repository (import outcome).

    It does so when a task is created with Git settings or its Git settings change, and
    emits one of these per such change, always last.

    ``outcome``:

    - ``imported``: a ``PromptVersionCreated(source="repository")`` and its ``PromptActivated``
      (``prompt_version_id``) came just before: the file's prompt is now the task's baseline.
    - ``unchanged``: the file holds the active prompt already; nothing else was emitted.
    - ``failed``: nothing was activated. ``reason`` says what to fix (file or branch missing,
      token refused, not text, invalid under the task's ``prompt_contract``); ``retryable``
      says whether the same settings may work later (a host outage). Changing the task's
      Git settings (or sending the token again) tries again.
    """

    TYPE = "kaizen.prompt.import_attempted.v1"
    task_id: uuid.UUID
    outcome: ImportOutcome
    prompt_path: str
    branch: str | None = None
    blob_sha: str | None = Field(None, description="The git blob id of the file that was read.")
    prompt_version_id: uuid.UUID | None = None
    reason: str | None = None
    retryable: bool = False
