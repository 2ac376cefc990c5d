"""The base of every event model, and deterministic ids for derived events."""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

# Namespace of every id Kaizen derives (uuid5): a redelivered input re-derives the same id.
KAIZEN_NAMESPACE = uuid.UUID("6f1c3a52-8d7e-4f0b-9a61-2b5d7c9e4a10")


def derive_id(*parts: object) -> uuid.UUID:
    """A stable id from its parts, so a processor that re-runs emits the same event."""
    return uuid.uuid5(KAIZEN_NAMESPACE, "/".join(str(p) for p in parts))


class Event(BaseModel):
    """A fact that happened. Frozen, closed to unknown fields, named in the past tense.

    ``TYPE`` is the CloudEvents ``type`` (``kaizen.<stream>.<name>.v<N>``). A change that
    is not purely additive gets a new ``vN`` and an upcaster from the old one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    #: Events of a task are keyed by its id; key events are keyed by the key's id.
    SCOPE: ClassVar[str] = "task"
