"""Pull/merge request events of the PR publisher."""

from __future__ import annotations

import uuid

from pydantic import Field

from shared.events.base import Event


class PrRetryRequested(Event):
    """A user asked to retry a failed PR; the compiled prompt version is re-used."""

    TYPE = "kaizen.pr.retry_requested.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID


class PrCreated(Event):
    """The PR/MR exists (created now, or an already open one was reused) → job SUCCESS."""

    TYPE = "kaizen.pr.created.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    pr_url: str
    number: int
    branch: str
    reused: bool = False


class PrFailed(Event):
    """The PR/MR could not be opened → job PR_FAILED; ``reason`` is actionable."""

    TYPE = "kaizen.pr.failed.v1"
    job_id: uuid.UUID
    task_id: uuid.UUID
    reason: str
    retryable: bool = Field(description="Whether retry-pr may succeed without changing the task.")
