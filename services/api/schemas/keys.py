"""API keys: the key itself is shown once, in the answer that creates it."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.schemas.common import UtcDateTime
from shared.events.keys import KeyRole

_NAME = Field(min_length=1, max_length=255, examples=["ci-pipeline"])
_ROLE = Field(
    description="`ingest`: post feedback and upload seeds. `read`: every GET. `admin`: everything.",
    examples=["ingest"],
)


class BootstrapCreate(BaseModel):
    """The first key; it is always an ``admin`` key."""

    model_config = ConfigDict(extra="forbid")

    name: str = _NAME


class KeyCreate(BaseModel):
    """A new key. ``role`` has no default: what a key may do is decided when it is issued,
    never by omission (a client written before roles gets a 422 naming the field, not a
    key that is silently weaker or stronger than it expects)."""

    model_config = ConfigDict(extra="forbid")

    name: str = _NAME
    role: KeyRole = _ROLE


class KeyCreated(BaseModel):
    """A new key. ``key`` is shown only here: store it now, it cannot be read again."""

    id: uuid.UUID
    name: str
    role: KeyRole
    key: str = Field(examples=["kaizen_0123456789abcdef0123456789abcdef"])
    prefix: str = Field(examples=["kaizen_01234567"])
    created_at: UtcDateTime


class KeyInfo(BaseModel):
    """A key without its secret."""

    id: uuid.UUID
    name: str
    role: KeyRole
    prefix: str
    status: Literal["active", "revoked"]
    bootstrap: bool
    created_at: UtcDateTime
    revoked_at: UtcDateTime | None

    @classmethod
    def from_row(cls, row: Any) -> KeyInfo:
        return cls.model_validate({name: getattr(row, name) for name in cls.model_fields})
