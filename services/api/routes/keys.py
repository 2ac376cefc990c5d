"""``/api/v1/keys``: issue, list and revoke API keys (admin); bootstrap the first one.

A key is returned once; only its SHA-256 hash is appended to the log. Bootstrap over
HTTP needs the operator's secret (``KAIZEN_BOOTSTRAP_TOKEN`` or ``_FILE``) in
``X-Bootstrap-Token``; without one configured, the first key comes from
``kaizen keys bootstrap`` on the server. Both are decided by the single-partition keys
topic: of any number of concurrent bootstrap calls, the first in the log wins and every
other gets 403. A revocation is decided there too, so that racing revocations can never
leave the installation without an active admin key.
"""

from __future__ import annotations

import functools
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response
from sqlalchemy import Connection

from services.api.deps import AdminKey, Reads, RequestId, SettingsDep, WriterDep
from services.api.keyring import new_key_event
from services.api.problems import ProblemError, conflict, not_found
from services.api.queries import keys
from services.api.schemas.common import problem_responses
from services.api.schemas.keys import BootstrapCreate, KeyCreate, KeyCreated, KeyInfo
from services.api.security import bootstrap_token_matches
from shared.events.keys import ApiKeyCreated, ApiKeyRevoked

router = APIRouter(prefix="/keys", tags=["keys"])
bootstrap_router = APIRouter(prefix="/keys", tags=["keys"])

BOOTSTRAP_CLOSED = "an API key exists already; create more keys with POST /api/v1/keys using an admin key"
BOOTSTRAP_DISABLED = (
    "bootstrap over HTTP is disabled: no KAIZEN_BOOTSTRAP_TOKEN or KAIZEN_BOOTSTRAP_TOKEN_FILE is "
    "configured. Create the first admin key on the server with `kaizen keys bootstrap` (it needs the "
    "broker's address), or configure a bootstrap token and send it in the X-Bootstrap-Token header"
)
BAD_BOOTSTRAP_HEADER = "the X-Bootstrap-Token header is missing or does not match the configured token"
LAST_ADMIN = "is the last active admin key; create another admin key before revoking it"


async def _created(reads: Reads, key: str, event: ApiKeyCreated) -> KeyCreated:
    row = await reads.run(lambda conn: keys.get(conn, event.key_id))
    # The write was awaited until projected, so the row exists.
    assert row is not None
    return KeyCreated(
        id=event.key_id,
        name=event.name,
        role=row.role,
        key=key,
        prefix=event.prefix,
        created_at=row.created_at,
    )


_TITLES = {
    "bootstrap-disabled": "Bootstrap over HTTP is disabled",
    "bootstrap-token": "Wrong bootstrap token",
    "bootstrap-closed": "Bootstrap is closed",
}


def _forbidden(detail: str, slug: str) -> ProblemError:
    return ProblemError(403, detail, title=_TITLES[slug], slug=slug)


@bootstrap_router.post("/bootstrap", status_code=201, responses=problem_responses(403, 422, 503, 504))
async def bootstrap_key(
    reads: Reads,
    writer: WriterDep,
    rid: RequestId,
    settings: SettingsDep,
    token: Annotated[
        str | None, Header(alias="X-Bootstrap-Token", description="The operator's bootstrap token.")
    ] = None,
    body: Annotated[BootstrapCreate | None, Body()] = None,
) -> KeyCreated:
    """The first API key, an `admin` key, with the operator's bootstrap token instead of a key.

    403 when no bootstrap token is configured (the detail says how to create the first key),
    when the token is wrong, and as soon as any key exists.
    """
    configured = settings.resolved_bootstrap_token
    if configured is None:
        raise _forbidden(BOOTSTRAP_DISABLED, "bootstrap-disabled")
    if token is None or not bootstrap_token_matches(configured, token):
        raise _forbidden(BAD_BOOTSTRAP_HEADER, "bootstrap-token")
    if await reads.run(keys.any_exists):
        raise _forbidden(BOOTSTRAP_CLOSED, "bootstrap-closed")
    key, event = new_key_event(body.name if body else "bootstrap", "admin", bootstrap=True)
    outcome = await writer.decide(rid, event)
    if not outcome.accepted:
        raise _forbidden(BOOTSTRAP_CLOSED, "bootstrap-closed")
    return await _created(reads, key, event)


@router.post("", status_code=201, responses=problem_responses(401, 422, 503, 504))
async def create_key(
    _: AdminKey, body: KeyCreate, reads: Reads, writer: WriterDep, rid: RequestId
) -> KeyCreated:
    """A new key with the given `role`. Its value is in this answer only: store it now."""
    key, event = new_key_event(body.name, body.role)
    await writer.write(rid, event)
    return await _created(reads, key, event)


@router.get("", responses=problem_responses(401))
async def list_keys(_: AdminKey, reads: Reads) -> list[KeyInfo]:
    """Every key, newest first, without key material."""
    return [KeyInfo.from_row(row) for row in await reads.run(keys.all_keys)]


@router.delete("/{key_id}", status_code=204, responses=problem_responses(401, 404, 409, 422, 503, 504))
async def revoke_key(
    _: AdminKey, key_id: uuid.UUID, reads: Reads, writer: WriterDep, rid: RequestId
) -> Response:
    """Revoke a key; it is refused from the next request on (streams end within seconds).

    409 when it is revoked already, or when it is the last active admin key.
    """
    row, admins = await reads.run(functools.partial(_key_and_admins, key_id))
    if row is None:
        raise not_found(f"API key {key_id} not found")
    if row.status == "revoked":
        raise conflict(f"API key {key_id} is revoked already")
    if row.role == "admin" and admins <= 1:
        raise conflict(f"API key {key_id} {LAST_ADMIN}")
    # Checked above for a quick answer; decided in the log for revocations that race.
    outcome = await writer.decide(rid, ApiKeyRevoked(key_id=key_id, keep_last_admin=True))
    if not outcome.accepted:
        raise conflict(f"API key {key_id} {LAST_ADMIN}")
    return Response(status_code=204)


def _key_and_admins(key_id: uuid.UUID, conn: Connection) -> tuple[Any | None, int]:
    """The key's row and how many admin keys are active, from one snapshot."""
    return keys.get(conn, key_id), keys.active_admins(conn)
