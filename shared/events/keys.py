"""API key events. Only the SHA-256 hash of a key ever leaves the API process."""

from __future__ import annotations

import uuid

from pydantic import Field

from shared.events.base import Event


class ApiKeyCreated(Event):
    """A key was issued. A ``bootstrap`` key only takes effect when no key exists yet."""

    TYPE = "kaizen.key.created.v1"
    SCOPE = "key"
    key_id: uuid.UUID
    name: str = Field(max_length=255)
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    prefix: str = Field(description="The first characters of the key, to recognise it in lists.")
    bootstrap: bool = False


class ApiKeyRevoked(Event):
    """A key was revoked; it is refused from the next request on."""

    TYPE = "kaizen.key.revoked.v1"
    SCOPE = "key"
    key_id: uuid.UUID
