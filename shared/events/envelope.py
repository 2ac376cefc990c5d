"""The CloudEvents 1.0 envelope around every Kaizen event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from shared.events.base import Event


def utcnow() -> datetime:
    return datetime.now(UTC)


def _subject(event: Event) -> str | None:
    for name in ("job_id", "task_id", "key_id", "service"):
        value = getattr(event, name, None)
        if value is not None:
            return str(value)
    return None


class Envelope(BaseModel):
    """CloudEvents attribute names plus Kaizen's task/job/correlation/causation ids.

    ``correlation_id`` is the HTTP request (or trigger) that started a chain of events;
    ``causation_id`` is the ``id`` of the event that directly caused this one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    type: str
    source: str
    subject: str | None = None
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    task_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    data: SerializeAsAny[Event] = Field(description="The event itself; its model is chosen by `type`.")

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        source: str,
        id: uuid.UUID | None = None,
        correlation_id: str | None = None,
        causation: Envelope | None = None,
        time: datetime | None = None,
    ) -> Envelope:
        """Wrap ``event``; task and job ids are read from the event's own fields."""
        task_id = getattr(event, "task_id", None)
        job_id = getattr(event, "job_id", None)
        if causation is not None and correlation_id is None:
            correlation_id = causation.correlation_id
        return cls(
            id=id or uuid.uuid4(),
            type=event.TYPE,
            source=source,
            subject=_subject(event),
            time=time or utcnow(),
            task_id=task_id,
            job_id=job_id,
            correlation_id=correlation_id,
            causation_id=str(causation.id) if causation is not None else None,
            data=event,
        )

    @property
    def key(self) -> bytes:
        """Partition key: the task id for task events, else the subject."""
        scope_id = self.task_id if self.data.SCOPE == "task" else self.subject
        return str(scope_id).encode()

    def attributes(self) -> dict[str, Any]:
        """The envelope without its data, for logs and audit views."""
        return self.model_dump(mode="json", exclude={"data"})
