"""API key events. Only the SHA-256 hash of a key ever leaves the API process."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared.events.base import Event

#: What a key may do: ``ingest`` posts feedback and seeds, ``read`` calls every GET,
#: ``admin`` everything. Each role is a separate grant; only ``admin`` includes the others.
KeyRole = Literal["ingest", "read", "admin"]
ROLES: tuple[KeyRole, ...] = ("ingest", "read", "admin")


class ApiKeyCreated(Event):
    """A key was issued. A ``bootstrap`` key only takes effect when no key exists yet."""

    TYPE = "kaizen.key.created.v1"
    SCOPE = "key"
    key_id: uuid.UUID
    name: str = Field(max_length=255)
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    prefix: str = Field(description="The first characters of the key, to recognise it in lists.")
    bootstrap: bool = False
    # Keys issued before roles existed could do everything, so an event without a role
    # decodes as an admin key; the API and the CLI always write the role.
    role: KeyRole = Field("admin", description="What the key may do: ingest, read or admin.")


class ApiKeyRevoked(Event):
    """A key was revoked; it is refused from the next request on.

    With ``keep_last_admin`` the revocation takes effect only if another admin key stays
    active, decided in the keys topic's order (one partition) by every consumer alike;
    revocations written before this rule existed have it ``False`` and always apply.
    """

    TYPE = "kaizen.key.revoked.v1"
    SCOPE = "key"
    key_id: uuid.UUID
    keep_last_admin: bool = Field(
        False, description="Refuse the revocation if it would leave no active admin key."
    )
