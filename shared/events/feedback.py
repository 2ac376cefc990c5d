"""Feedback events: scored outputs sent by applications, and uploaded seed examples."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import Event

FeedbackSource = Literal["sdk", "user_rating", "auto_eval", "seed"]


class FeedbackRecorded(Event):
    """One scored output of a task. Live feedback (not ``seed``) counts toward the threshold."""

    TYPE = "kaizen.feedback.recorded.v1"
    feedback_id: uuid.UUID
    task_id: uuid.UUID
    inputs: dict[str, Any]
    output: str
    score: float = Field(ge=0, le=1)
    source: FeedbackSource = "sdk"
    metadata: dict[str, Any] = Field(default_factory=dict)


class Seed(BaseModel):
    """One seed example from an uploaded JSONL file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feedback_id: uuid.UUID
    inputs: dict[str, Any]
    output: str
    score: float = Field(1.0, ge=0, le=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class SeedsUploaded(Event):
    """A batch of seed examples. Seeds train but never count toward the threshold.

    A large upload is split into several events (``part`` of ``parts``) to stay far
    below Kafka's record size limit.
    """

    TYPE = "kaizen.feedback.seeds_uploaded.v1"
    task_id: uuid.UUID
    upload_id: uuid.UUID
    part: int = Field(1, ge=1)
    parts: int = Field(1, ge=1)
    seeds: list[Seed]
