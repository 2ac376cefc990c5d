"""The projector's fold of API key events: creations and revocations.

The verdicts come from :mod:`shared.decisions`, which the API's key ring asks too, so
every process reaches the same answer (docs/adr/0006-decide-once.md). Both rules can
need every key: a bootstrap key only while none exists, the last active admin kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.projector.outcomes import outcome
from shared.decisions import decide_key_created, decide_key_revoked
from shared.events import keys as ky

if TYPE_CHECKING:
    from services.projector.handlers import Fact
    from services.projector.view import Row, View, Wanted


def want_key_created(w: Wanted, f: Fact, e: ky.ApiKeyCreated) -> None:
    w.key_ids.add(str(e.key_id))
    w.key_hashes.add(e.key_hash)
    w.all_keys |= e.bootstrap  # counts every key


def want_key_revoked(w: Wanted, f: Fact, e: ky.ApiKeyRevoked) -> None:
    w.key_ids.add(str(e.key_id))
    w.all_keys |= e.keep_last_admin  # counts the active admin keys


def on_key_created(view: View, f: Fact, e: ky.ApiKeyCreated) -> None:
    keys = view.api_keys
    assert view.all_keys or not e.bootstrap, "a bootstrap key needs every key loaded"
    known = keys.get(str(e.key_id)) is not None or any(
        r["key_hash"] == e.key_hash for r in keys.rows.values()
    )
    verdict = decide_key_created(known=known, bootstrap=e.bootstrap, any_key=bool(keys.rows))
    if verdict.reason == "keys_exist":
        outcome(view, f, "rejected", e.key_id, verdict.reason, verdict.detail)
        return
    values = {
        "id": str(e.key_id),
        "name": e.name,
        "key_hash": e.key_hash,
        "prefix": e.prefix,
        "status": "active",
        "bootstrap": e.bootstrap,
        "created_at": f.time,
        "role": e.role,
    }
    if verdict.accepted:
        keys.insert(values)
    else:  # a copy of the request (or a clash): INSERT … ON CONFLICT DO NOTHING inserts nothing
        keys.bind((values["id"],), values)
    outcome(view, f, "accepted", e.key_id)


def on_key_revoked(view: View, f: Fact, e: ky.ApiKeyRevoked) -> None:
    # The API's key ring asks the same function: every process reaches the same verdict.
    key_id = str(e.key_id)
    row = view.api_keys.get(key_id)
    verdict = decide_key_revoked(
        active=row is not None and row["status"] == "active",
        last_active_admin=e.keep_last_admin and _last_active_admin(view, key_id),
        keep_last_admin=e.keep_last_admin,
    )
    if verdict.reason == "last_admin":
        outcome(view, f, "rejected", e.key_id, verdict.reason, verdict.detail)
        return
    values = {"status": "revoked", "revoked_at": f.time}
    if verdict.accepted:
        view.api_keys.update((key_id,), **values)
    else:  # revoked already, or unknown: the UPDATE changes no row
        view.api_keys.bind((key_id,), values)
    outcome(view, f, "accepted", e.key_id)


def _is_active_admin(row: Row) -> bool:
    return bool(row["status"] == "active" and row["role"] == "admin")


def _last_active_admin(view: View, key_id: str) -> bool:
    assert view.all_keys, "the last-admin rule needs every key loaded"
    row = view.api_keys.get(key_id)
    if row is None or not _is_active_admin(row):
        return False
    return sum(_is_active_admin(r) for r in view.api_keys.rows.values()) == 1
