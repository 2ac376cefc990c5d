"""Feedback on a task's outputs, and seed uploads."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from services.api.schemas.common import FieldErrorOut, Problem, UtcDateTime
from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded, FeedbackSource


class FeedbackCreate(BaseModel):
    """One scored output. ``inputs`` must match the task's schema exactly when it has one."""

    model_config = ConfigDict(extra="forbid")

    task_id: uuid.UUID
    inputs: dict[str, Any] = Field(examples=[{"ticket": "My invoice is wrong"}])
    output: str = Field(examples=["The customer reports a wrong invoice."])
    score: float = Field(ge=0, le=1, examples=[0.9])
    source: FeedbackSource = "sdk"
    metadata: dict[str, Any] = Field(default_factory=dict)


class FeedbackBatch(BaseModel):
    """Up to 1,000 items, each shaped like ``POST /api/v1/feedback``'s body.

    The items are judged one by one in the route (``SkipValidation``): a bad item is
    refused in its result and never sinks the others.
    """

    model_config = ConfigDict(extra="forbid")

    items: list[SkipValidation[FeedbackCreate]] = Field(min_length=1, max_length=1000)


class ItemProblem(Problem):
    """Why one item of a batch was refused; ``instance`` points at the item (``…#/items/3``)."""

    errors: list[FieldErrorOut] = Field(default_factory=list)


class FeedbackItemResult(BaseModel):
    """One item's fate, at the item's ``index``: ``id`` when accepted, ``problem`` when refused."""

    index: int
    status: int = Field(description="201 when accepted; the problem's status (404, 422) when refused.")
    id: uuid.UUID | None = None
    problem: ItemProblem | None = None


class FeedbackBatchResult(BaseModel):
    accepted: int
    refused: int
    results: list[FeedbackItemResult] = Field(description="One per item, in the request's order.")


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

    @classmethod
    def recorded(cls, envelope: Envelope) -> FeedbackResponse:
        """The answer from the event as appended, equal to :meth:`from_row` of the row it becomes.

        The projector stores exactly the event's fields, its ``feedback_id`` as ``id`` and
        the envelope's ``time`` as ``created_at`` (``services/projector/tasks.py``
        ``on_feedback``), so the writer need not read its own write back.
        """
        event = envelope.data
        if not isinstance(event, FeedbackRecorded):
            raise TypeError(f"{envelope.type} is not a recorded feedback")
        values = event.model_dump(include=set(cls.model_fields) - {"id", "created_at"})
        return cls.model_validate({**values, "id": event.feedback_id, "created_at": envelope.time})


class SeedLineError(BaseModel):
    line: int
    message: str


class SeedsRejected(Problem):
    """A seed upload's 422: the fields that broke a rule, or (``invalid-seeds``) the file's rejected lines."""

    errors: list[FieldErrorOut | SeedLineError]


class SeedUploadResult(BaseModel):
    """What an upload added; ``errors`` lists the first 20 rejected lines."""

    upload_id: uuid.UUID
    accepted: int
    rejected: int
    errors: list[SeedLineError]
    total_seeds: int = Field(description="Seeds the task has now.")
    seed_limit: int
