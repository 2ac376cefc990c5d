"""API keys: the key itself is shown once, in the answer that creates it."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.schemas.common import UtcDateTime


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, examples=["ci-pipeline"])


class KeyCreated(BaseModel):
    """A new key. ``key`` is shown only here: store it now, it cannot be read again."""

    id: uuid.UUID
    name: str
    key: str = Field(examples=["kaizen_0123456789abcdef0123456789abcdef"])
    prefix: str = Field(examples=["kaizen_01234567"])
    created_at: UtcDateTime


class KeyInfo(BaseModel):
    """A key without its secret."""

    id: uuid.UUID
    name: str
    prefix: str
    status: Literal["active", "revoked"]
    bootstrap: bool
    created_at: UtcDateTime
    revoked_at: UtcDateTime | None

    @classmethod
    def from_row(cls, row: Any) -> KeyInfo:
        return cls.model_validate({name: getattr(row, name) for name in cls.model_fields})
