"""``/api/v1/keys``: issue, list and revoke API keys; bootstrap the first one.

A key is returned once; only its SHA-256 hash is appended to the log. Bootstrap is
decided by the single-partition keys topic: of any number of concurrent bootstrap
calls, the first in the log wins and every other gets 403.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Response

from services.api.deps import ReadModel, RequestId, WriterDep
from services.api.problems import ProblemError, conflict, not_found
from services.api.queries import keys
from services.api.schemas.common import problem_responses
from services.api.schemas.keys import KeyCreate, KeyCreated, KeyInfo
from services.api.security import hash_key, key_prefix, new_api_key
from shared.events.keys import ApiKeyCreated, ApiKeyRevoked

router = APIRouter(prefix="/keys", tags=["keys"])
bootstrap_router = APIRouter(prefix="/keys", tags=["keys"])

BOOTSTRAP_CLOSED = "an API key exists already; create more keys with POST /api/v1/keys using an existing key"


def _new_key(name: str, bootstrap: bool = False) -> tuple[str, ApiKeyCreated]:
    key = new_api_key()
    event = ApiKeyCreated(
        key_id=uuid.uuid4(), name=name, key_hash=hash_key(key), prefix=key_prefix(key), bootstrap=bootstrap
    )
    return key, event


async def _created(db: ReadModel, key: str, event: ApiKeyCreated) -> KeyCreated:
    async with db.connect() as conn:
        row = await keys.get(conn, event.key_id)
    # The write was awaited until projected, so the row exists.
    assert row is not None
    return KeyCreated(
        id=event.key_id, name=event.name, key=key, prefix=event.prefix, created_at=row.created_at
    )


@bootstrap_router.post("/bootstrap", status_code=201, responses=problem_responses(403, 422, 503, 504))
async def bootstrap_key(
    db: ReadModel, writer: WriterDep, rid: RequestId, body: Annotated[KeyCreate | None, Body()] = None
) -> KeyCreated:
    """The first API key, without authentication. 403 as soon as any key exists."""
    async with db.connect() as conn:
        if await keys.any_exists(conn):
            raise ProblemError(403, BOOTSTRAP_CLOSED, title="Bootstrap is closed", slug="bootstrap-closed")
    key, event = _new_key(body.name if body else "bootstrap", bootstrap=True)
    outcome = await writer.decide(rid, event)
    if not outcome.accepted:
        raise ProblemError(403, BOOTSTRAP_CLOSED, title="Bootstrap is closed", slug="bootstrap-closed")
    return await _created(db, key, event)


@router.post("", status_code=201, responses=problem_responses(401, 422, 503, 504))
async def create_key(body: KeyCreate, db: ReadModel, writer: WriterDep, rid: RequestId) -> KeyCreated:
    """A new key. Its value is in this answer only: store it now."""
    key, event = _new_key(body.name)
    await writer.write(rid, event)
    return await _created(db, key, event)


@router.get("", responses=problem_responses(401))
async def list_keys(db: ReadModel) -> list[KeyInfo]:
    """Every key, newest first, without key material."""
    async with db.connect() as conn:
        return [KeyInfo.from_row(row) for row in await keys.all_keys(conn)]


@router.delete("/{key_id}", status_code=204, responses=problem_responses(401, 404, 409, 422, 503, 504))
async def revoke_key(key_id: uuid.UUID, db: ReadModel, writer: WriterDep, rid: RequestId) -> Response:
    """Revoke a key; it is refused from the next request on."""
    async with db.connect() as conn:
        row = await keys.get(conn, key_id)
    if row is None:
        raise not_found(f"API key {key_id} not found")
    if row.status == "revoked":
        raise conflict(f"API key {key_id} is revoked already")
    await writer.write(rid, ApiKeyRevoked(key_id=key_id))
    return Response(status_code=204)
