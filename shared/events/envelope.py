"""The CloudEvents 1.0 envelope around every Kaizen event.

On the wire (envelope v2) every attribute name follows the CloudEvents naming rule —
lower-case letters and digits only — so strict consumers accept the records: Kaizen's
ids travel as the extensions ``taskid``, ``jobid``, ``correlationid`` and
``causationid``, next to the standard ``traceparent`` (Distributed Tracing) and
``partitionkey`` (Partitioning: the Kafka record key). Absent attributes are omitted.
In Python the attributes keep their snake_case names (``envelope.task_id``); the wire
names are their aliases. Records of envelope v1 (snake_case names on the wire) are
renamed by :func:`shared.events.upcasters.upcast_envelope` before they are validated;
``docs/events/envelope.md`` tells the two layouts apart.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    computed_field,
    model_validator,
)

from shared.events.base import Event


def utcnow() -> datetime:
    return datetime.now(UTC)


def _absent(value: object) -> bool:
    # CloudEvents has no null attributes: an absent one is left out of the record.
    return value is None


def _field(event: Event, name: str) -> Any:
    """``event.name``, or ``None`` when its type has no such field.

    Not ``getattr(event, name, None)``: on a pydantic model a missing name goes through
    ``__getattr__`` and an ``AttributeError`` raised and caught, a cost on every event wrapped.
    """
    return event.__dict__.get(name) if name in type(event).model_fields else None


def _subject(event: Event) -> str | None:
    for name in ("job_id", "task_id", "key_id", "subscription_id", "service"):
        value = _field(event, name)
        if value is not None and str(value):  # CloudEvents: a subject, if present, is not empty
            return str(value)
    return None


class Envelope(BaseModel):
    """CloudEvents attributes plus Kaizen's task/job/correlation/causation ids.

    ``correlation_id`` is the HTTP request (or trigger) that started a chain of events;
    ``causation_id`` is the ``id`` of the event that directly caused this one;
    ``traceparent`` is the W3C trace context of the span that emitted it.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    type: str
    source: str
    subject: str | None = Field(default=None, exclude_if=_absent)
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    task_id: uuid.UUID | None = Field(
        default=None, alias="taskid", exclude_if=_absent, description="The task the event is about."
    )
    job_id: uuid.UUID | None = Field(
        default=None, alias="jobid", exclude_if=_absent, description="The job the event is about."
    )
    correlation_id: str | None = Field(
        default=None,
        alias="correlationid",
        exclude_if=_absent,
        description="The request (or trigger) that started the chain of events.",
    )
    causation_id: str | None = Field(
        default=None,
        alias="causationid",
        exclude_if=_absent,
        description="The `id` of the event that directly caused this one.",
    )
    traceparent: str | None = Field(
        default=None,
        exclude_if=_absent,
        description="W3C trace context (CloudEvents Distributed Tracing extension).",
    )
    data: SerializeAsAny[Event] = Field(description="The event itself; its model is chosen by `type`.")

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, raw: Any) -> Any:
        # ``partitionkey`` is derived from the event (see ``partitionkey`` below), never stored.
        if isinstance(raw, dict) and "partitionkey" in raw:
            raw = {k: v for k, v in raw.items() if k != "partitionkey"}
        return raw

    @computed_field(  # type: ignore[prop-decorator]
        description="The Kafka record key (CloudEvents Partitioning extension): "
        "the task id for task events, else the subject."
    )
    @property
    def partitionkey(self) -> str:
        scope_id = self.task_id if self.data.SCOPE == "task" else self.subject
        return str(scope_id)

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
        traceparent: str | None = None,
    ) -> Envelope:
        """Wrap ``event``; task and job ids are read from the event's own fields.

        ``correlation_id`` and ``traceparent`` are inherited from ``causation`` unless given.
        """
        task_id = _field(event, "task_id")
        job_id = _field(event, "job_id")
        if causation is not None and correlation_id is None:
            correlation_id = causation.correlation_id
        if causation is not None and traceparent is None:
            traceparent = causation.traceparent
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
            traceparent=traceparent,
            data=event,
        )

    @property
    def key(self) -> bytes:
        """Partition key: the task id for task events, else the subject."""
        return self.partitionkey.encode()

    def attributes(self) -> dict[str, Any]:
        """The CloudEvents attributes (wire names) without the data, for logs and audit views."""
        return self.model_dump(mode="json", exclude={"data"})
