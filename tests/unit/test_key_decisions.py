"""API keys are decided once: the projector and the API's key ring agree on any history.

Both fold the keys topic: the projector into the read model's ``api_keys`` rows (and the
outcome the API answers a request with), every API process into the key ring it
authenticates from. Each asks ``shared.decisions``; these tests fold random histories of
creates (ordinary and bootstrap, clashing ids and hashes) and revocations (keeping the last
admin or not) through both, the projector one batch per event with the rows
``adapters.load`` would give it, and compare them event by event with a reference that
asks only ``shared.decisions``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.api.keyring import KeyRing
from services.projector.handlers import Fact, evolve, wanted
from services.projector.view import View
from shared.decisions import decide_key_created, decide_key_revoked
from shared.events import keys as ky
from shared.events.base import Event
from shared.events.envelope import Envelope

IDS = [uuid.UUID(int=700 + i) for i in range(3)]
HASHES = [f"{i:064x}" for i in range(1, 4)]
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def create(
    k: int, *, hash_of: int | None = None, role: str = "admin", bootstrap: bool = False
) -> ky.ApiKeyCreated:
    return ky.ApiKeyCreated(
        key_id=IDS[k],
        name=f"key {k}",
        key_hash=HASHES[k if hash_of is None else hash_of],
        prefix="kz_",
        bootstrap=bootstrap,
        role=role,  # type: ignore[arg-type]
    )


def revoke(k: int, *, keep_last_admin: bool = True) -> ky.ApiKeyRevoked:
    return ky.ApiKeyRevoked(key_id=IDS[k], keep_last_admin=keep_last_admin)


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    key = st.integers(0, len(IDS) - 1)
    creates = st.builds(
        lambda k, clash, role, bootstrap: create(k, hash_of=clash, role=role, bootstrap=bootstrap),
        key,
        st.none() | key,
        st.sampled_from(["admin", "read", "ingest"]),
        st.booleans(),
    )
    revokes = st.builds(lambda k, keep: revoke(k, keep_last_admin=keep), key, st.booleans())
    return draw(st.lists(st.one_of(creates, revokes), max_size=10))


#: Per key id: its status (``None``: no such key), and the request's answer (rejected reasons only).
Seen = tuple[dict[uuid.UUID, str | None], str | None]


def reference(history: list[Event]) -> list[Seen]:
    rows: dict[uuid.UUID, dict[str, str]] = {}
    after: list[Seen] = []
    for event in history:
        rejected = None
        if isinstance(event, ky.ApiKeyCreated):
            known = event.key_id in rows or any(r["hash"] == event.key_hash for r in rows.values())
            verdict = decide_key_created(known=known, bootstrap=event.bootstrap, any_key=bool(rows))
            if verdict.accepted:
                rows[event.key_id] = {"hash": event.key_hash, "role": event.role, "status": "active"}
            rejected = verdict.reason if verdict.reason == "keys_exist" else None
        else:
            assert isinstance(event, ky.ApiKeyRevoked)
            row = rows.get(event.key_id)
            admins = [r for r in rows.values() if r["role"] == "admin" and r["status"] == "active"]
            last = row is not None and row in admins and len(admins) == 1
            active = row is not None and row["status"] == "active"
            verdict = decide_key_revoked(
                active=active, last_active_admin=last, keep_last_admin=event.keep_last_admin
            )
            if verdict.accepted and row is not None:
                row["status"] = "revoked"
            rejected = verdict.reason if verdict.reason == "last_admin" else None
        after.append(({k: (rows[k]["status"] if k in rows else None) for k in IDS}, rejected))
    return after


def fact(event: Event, offset: int) -> Fact:
    envelope = Envelope.wrap(
        event, source="api", correlation_id=f"req-{offset}", time=T0 + timedelta(seconds=offset)
    )
    return Fact(envelope, "keys", 0, offset)


def projector_batches(history: list[Event]) -> list[Seen]:
    """One batch per event: the rows it wants loaded from the table, its changes upserted into it."""
    table: dict[str, dict[str, Any]] = {}
    after: list[Seen] = []
    for offset, event in enumerate(history):
        f = fact(event, offset)
        want, view = wanted([f]), View()
        if want.all_keys:
            view.api_keys.seed(table.values())
            view.all_keys = True
        else:
            ids = want.key_ids | want.key_hashes
            view.api_keys.seed(r for r in table.values() if r["id"] in ids or r["key_hash"] in ids)
        evolve(view, f)
        for row in view.api_keys.changes().upserts:
            table[row["id"]] = row
        [outcome] = view.request_outcomes.first.values()
        rejected = outcome["reason"] if outcome["outcome"] == "rejected" else None
        after.append(({k: table[str(k)]["status"] if str(k) in table else None for k in IDS}, rejected))
    return after


def ring_fold(history: list[Event]) -> list[dict[uuid.UUID, str | None]]:
    ring = KeyRing()
    after = []
    for offset, event in enumerate(history):
        ring.apply(fact(event, offset).envelope)
        statuses: dict[uuid.UUID, str | None] = {}
        for k in IDS:
            record = next((ring.known(h) for h in HASHES if (r := ring.known(h)) and r.id == str(k)), None)
            statuses[k] = record.status if record is not None else None
        after.append(statuses)
    return after


@settings(max_examples=300, deadline=None)
@given(histories())
def test_the_projector_and_the_key_ring_reach_the_verdicts_of_shared_decisions(history: list[Event]) -> None:
    expected = reference(history)
    assert projector_batches(history) == expected
    assert ring_fold(history) == [statuses for statuses, _ in expected]


def test_a_bootstrap_key_after_every_key_was_revoked_is_refused_by_both() -> None:
    history: list[Event] = [create(0, role="read"), revoke(0), create(1, bootstrap=True)]
    assert projector_batches(history)[-1] == ({IDS[0]: "revoked", IDS[1]: None, IDS[2]: None}, "keys_exist")
    assert ring_fold(history)[-1][IDS[1]] is None


def test_the_last_active_admin_key_stays_unless_the_request_allows_it() -> None:
    kept: list[Event] = [create(0), create(1, role="read"), revoke(0)]
    assert projector_batches(kept)[-1] == ({IDS[0]: "active", IDS[1]: "active", IDS[2]: None}, "last_admin")
    allowed: list[Event] = [create(0), revoke(0, keep_last_admin=False)]
    assert ring_fold(allowed)[-1][IDS[0]] == "revoked"
