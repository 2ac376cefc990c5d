"""The in-memory key ring: the keys topic folded as the projector folds it."""

from __future__ import annotations

import uuid

import pytest

from services.api import keyring
from services.api.keyring import KeyRing
from services.api.security import hash_key, key_prefix, new_api_key
from shared.events.envelope import Envelope
from shared.events.keys import ApiKeyCreated, ApiKeyRevoked
from shared.events.tasks import TaskDeleted


def created(key: str, *, bootstrap: bool = False, key_id: uuid.UUID | None = None) -> Envelope:
    event = ApiKeyCreated(
        key_id=key_id or uuid.uuid4(),
        name="k",
        key_hash=hash_key(key),
        prefix=key_prefix(key),
        bootstrap=bootstrap,
    )
    return Envelope.wrap(event, source="api")


def revoked(of: Envelope) -> Envelope:
    assert isinstance(of.data, ApiKeyCreated)
    return Envelope.wrap(ApiKeyRevoked(key_id=of.data.key_id), source="api")


def test_a_created_key_is_active_and_carries_what_the_read_model_holds() -> None:
    ring, key = KeyRing(), new_api_key()
    event = created(key)
    ring.apply(event)
    record = ring.active(hash_key(key))
    assert record is not None and record.status == "active" and record.revoked_at is None
    assert isinstance(event.data, ApiKeyCreated)
    expected = (str(event.data.key_id), key_prefix(key), event.time)
    assert (record.id, record.prefix, record.created_at) == expected


def test_a_revoked_key_is_refused_from_the_event_on() -> None:
    ring, key = KeyRing(), new_api_key()
    creation = created(key)
    ring.apply(creation)
    revocation = revoked(creation)
    ring.apply(revocation)
    assert ring.active(hash_key(key)) is None
    record = ring.known(hash_key(key))
    assert record is not None and record.status == "revoked" and record.revoked_at == revocation.time


def test_revoking_twice_keeps_the_first_revocation_time() -> None:
    ring, key = KeyRing(), new_api_key()
    creation = created(key)
    first = revoked(creation)
    for event in (creation, first, revoked(creation)):
        ring.apply(event)
    record = ring.known(hash_key(key))
    assert record is not None and record.revoked_at == first.time


def test_an_unknown_key_is_not_known() -> None:
    ring = KeyRing()
    ring.apply(created(new_api_key()))
    assert ring.known(hash_key(new_api_key())) is None


def test_a_bootstrap_key_counts_only_while_no_key_exists_revoked_ones_included() -> None:
    ring, first, late = KeyRing(), new_api_key(), new_api_key()
    creation = created(first, bootstrap=True)
    ring.apply(creation)
    ring.apply(revoked(creation))
    ring.apply(created(late, bootstrap=True))
    assert ring.known(hash_key(late)) is None
    assert len(ring) == 1


def test_the_first_event_of_an_id_or_a_hash_wins() -> None:
    ring, key, other = KeyRing(), new_api_key(), new_api_key()
    first = created(key)
    assert isinstance(first.data, ApiKeyCreated)
    ring.apply(first)
    ring.apply(created(other, key_id=first.data.key_id))
    ring.apply(created(key))
    record = ring.known(hash_key(key))
    assert ring.known(hash_key(other)) is None
    assert record is not None and record.id == str(first.data.key_id) and len(ring) == 1


def test_events_of_other_streams_change_nothing() -> None:
    ring = KeyRing()
    ring.apply(Envelope.wrap(TaskDeleted(task_id=uuid.uuid4()), source="api"))
    assert len(ring) == 0


def test_the_deciding_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[str, str]] = []

    def spy(stored: str, presented: str) -> bool:
        compared.append((stored, presented))
        return stored == presented

    monkeypatch.setattr(keyring, "hashes_match", spy)
    ring, key = KeyRing(), new_api_key()
    ring.apply(created(key))
    assert ring.active(hash_key(key)) is not None
    assert compared == [(hash_key(key), hash_key(key))]


def test_a_record_whose_hash_does_not_match_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyring, "hashes_match", lambda stored, presented: False)
    ring, key = KeyRing(), new_api_key()
    ring.apply(created(key))
    assert ring.active(hash_key(key)) is None
