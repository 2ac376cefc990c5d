"""The API keys as a fold of the keys topic, held in memory: authentication without a query.

The keys topic has one partition, so every API process folds the same events in the
same order as the projector and reaches the same answer: a key created by a request is
active unless it is a bootstrap key arriving after any other key; a revoked key stays
revoked; a revocation that must keep the last admin (``keep_last_admin``) is refused
when no other admin key is active. Pure: no I/O here (``services/api/keyfeed.py`` feeds it from Kafka).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.api.security import hash_key, hashes_match, key_prefix, new_api_key
from shared.decisions import decide_key_created, decide_key_revoked
from shared.events.envelope import Envelope
from shared.events.keys import ApiKeyCreated, ApiKeyRevoked, KeyRole


@dataclass(frozen=True)
class KeyRecord:
    """A key as the read model's ``api_keys`` row holds it (only its hash, never the key)."""

    id: str
    name: str
    key_hash: str
    prefix: str
    status: str
    bootstrap: bool
    created_at: datetime
    revoked_at: datetime | None = None
    role: str = "admin"

    @classmethod
    def from_row(cls, row: Any) -> KeyRecord:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


class KeyRing:
    """Key hash → key record, folded from the keys topic in log order."""

    def __init__(self) -> None:
        self._by_hash: dict[str, KeyRecord] = {}
        self._hash_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._by_hash)

    def apply(self, envelope: Envelope) -> None:
        """Fold one event of the keys topic; other events change nothing."""
        event = envelope.data
        if isinstance(event, ApiKeyCreated):
            self._created(event, envelope.time)
        elif isinstance(event, ApiKeyRevoked):
            self._revoked(event, envelope.time)

    def _created(self, event: ApiKeyCreated, time: datetime) -> None:
        # The projector asks the same function (shared/decisions.py).
        key_id = str(event.key_id)
        known = key_id in self._hash_of or event.key_hash in self._by_hash
        if decide_key_created(known=known, bootstrap=event.bootstrap, any_key=bool(self._by_hash)).rejected:
            return
        self._hash_of[key_id] = event.key_hash
        self._by_hash[event.key_hash] = KeyRecord(
            key_id, event.name, event.key_hash, event.prefix, "active", event.bootstrap, time, role=event.role
        )

    def _revoked(self, event: ApiKeyRevoked, time: datetime) -> None:
        key_hash = self._hash_of.get(str(event.key_id))
        record = self._by_hash.get(key_hash) if key_hash is not None else None
        active = record is not None and record.status == "active"
        last = record is not None and _active_admin(record) and self.active_admins() == 1
        verdict = decide_key_revoked(
            active=active, last_active_admin=last, keep_last_admin=event.keep_last_admin
        )
        if record is not None and verdict.accepted:
            self._by_hash[record.key_hash] = replace(record, status="revoked", revoked_at=time)

    def active_admins(self) -> int:
        """How many admin keys are active: the projector's count, for the last-admin rule."""
        return sum(1 for r in self._by_hash.values() if _active_admin(r))

    def known(self, presented_hash: str) -> KeyRecord | None:
        """The key (active or revoked) whose hash is ``presented_hash``, or ``None``.

        The dict finds the candidate by the hash, as the read model's unique index did;
        the comparison that decides is constant-time, as before.
        """
        record = self._by_hash.get(presented_hash)
        if record is None or not hashes_match(record.key_hash, presented_hash):
            return None
        return record

    def active(self, presented_hash: str) -> KeyRecord | None:
        """The active key whose hash is ``presented_hash``; ``None`` for unknown and revoked keys."""
        record = self.known(presented_hash)
        return record if record is not None and record.status == "active" else None


def _active_admin(record: KeyRecord) -> bool:
    return record.role == "admin" and record.status == "active"


def new_key_event(name: str, role: KeyRole, bootstrap: bool = False) -> tuple[str, ApiKeyCreated]:
    """A fresh key and the event that issues it (the API and ``kaizen keys bootstrap``)."""
    key = new_api_key()
    event = ApiKeyCreated(
        key_id=uuid.uuid4(),
        name=name,
        key_hash=hash_key(key),
        prefix=key_prefix(key),
        bootstrap=bootstrap,
        role=role,
    )
    return key, event
