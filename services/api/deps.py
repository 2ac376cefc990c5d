"""Dependencies, declared once as ``Annotated`` aliases (fastapi/full-stack-fastapi-template).

Roles are enforced here and only here: every route under ``/api/v1`` (but bootstrap)
takes exactly one of :data:`IngestKey`, :data:`ReadKey`, :data:`AdminKey`, and a test
walks the app's routes to keep it so.

Routes never hold a database connection while they wait for the projector: they read
through :data:`Reads` (``await reads.run(work)``), each work a short transaction begun
after the call, so a burst of waiting writes cannot drain the pool. :data:`ReadModel`,
the async engine itself, is left to the health routes, which open connections of their
own and report one that fails as the database being down.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in a worker
thread, a thread hop per dependency per request, which cost more than the dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from cryptography.fernet import Fernet
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api import errors
from services.api.adapters import ProjectionWatcher, Writer
from services.api.keyfeed import KeyFeed
from services.api.keyring import KeyRecord
from services.api.probe import LogProbe
from services.api.problems import ProblemError
from services.api.queries import keys
from services.api.reads import Reads as ReadRunner
from services.api.security import hash_key, hashes_match, is_well_formed
from shared.events.keys import KeyRole
from shared.events.topics import Topics
from shared.kafka.producer import EventLog
from shared.settings import Settings


@dataclass
class ApiContext:
    """Everything the lifespan builds; reachable from every request."""

    settings: Settings
    topics: Topics
    engine: AsyncEngine
    events: EventLog
    watcher: ProjectionWatcher
    writer: Writer
    probe: LogProbe
    fernet: Fernet
    keys: KeyFeed
    reads: ReadRunner


async def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.kaizen
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


async def get_settings(context: ContextDep) -> Settings:
    return context.settings


async def get_engine(context: ContextDep) -> AsyncEngine:
    return context.engine


async def get_reads(context: ContextDep) -> ReadRunner:
    return context.reads


async def get_writer(context: ContextDep) -> Writer:
    return context.writer


async def get_fernet(context: ContextDep) -> Fernet:
    return context.fernet


async def get_probe(context: ContextDep) -> LogProbe:
    return context.probe


async def get_request_id(request: Request) -> str:
    return errors.request_id(request)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadModel = Annotated[AsyncEngine, Depends(get_engine)]
#: A request's reads in one trip off the event loop: ``await reads.run(work)``, ``work``
#: synchronous (``services/api/reads.py`` says why).
Reads = Annotated[ReadRunner, Depends(get_reads)]
WriterDep = Annotated[Writer, Depends(get_writer)]
FernetDep = Annotated[Fernet, Depends(get_fernet)]
ProbeDep = Annotated[LogProbe, Depends(get_probe)]
#: A fresh id per request: the ``correlation_id`` of every event the request appends.
RequestId = Annotated[str, Depends(get_request_id)]

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key, `kaizen_` followed by 32 hex digits."
)


def _unauthorized(title: str, detail: str) -> ProblemError:
    return ProblemError(
        401, detail, title=title, slug="unauthorized", headers={"WWW-Authenticate": "X-API-Key"}
    )


async def current_key(
    context: ContextDep, presented: Annotated[str | None, Security(api_key_header)]
) -> KeyRecord:
    """The active key presented in ``X-API-Key``, checked on every request."""
    if not presented:
        raise _unauthorized("Missing API key", "send an API key in the X-API-Key header")
    record = await active_key(context, hash_key(presented)) if is_well_formed(presented) else None
    if record is None:
        raise _unauthorized("Invalid or revoked API key", "the X-API-Key is not an active API key")
    return record


async def active_key(context: ContextDep, digest: str) -> KeyRecord | None:
    """From the in-memory key ring when it follows the log, else from the read model.

    A hash the ring does not know is looked up in the read model too: a key created
    through another API process is there once that request returned, perhaps a moment
    before this process's feed reads it. A revoked key is known to the ring, so it is
    refused without a query.
    """
    feed = context.keys
    if feed.serving and (known := feed.ring.known(digest)) is not None:
        return known if known.status == "active" else None
    async with context.engine.connect() as conn:
        row = await keys.active_by_hash(conn, digest)
    if row is None or not hashes_match(row.key_hash, digest):
        return None
    return KeyRecord.from_row(row)


CurrentKey = Annotated[KeyRecord, Depends(current_key)]


class RoleCheck:
    """Admits a key whose role is ``role``, or ``admin``; anything else gets 403.

    The roles are separate grants, not a ladder: an ``ingest`` key (an application sending
    feedback) reads nothing, and a ``read`` key (a dashboard) writes nothing.
    """

    def __init__(self, role: KeyRole) -> None:
        self.role: KeyRole = role

    async def __call__(self, key: CurrentKey) -> KeyRecord:
        if key.role in (self.role, "admin"):
            return key
        needed = "an admin key" if self.role == "admin" else f"a key with role {self.role!r} or 'admin'"
        raise ProblemError(
            403,
            f"this endpoint needs {needed}; this key's role is {key.role!r}",
            title="Role not allowed",
            slug="forbidden-role",
            required_role=self.role,
        )


ROLE_CHECKS: dict[KeyRole, RoleCheck] = {role: RoleCheck(role) for role in ("ingest", "read", "admin")}

#: Feedback and seed uploads: what an application's key needs.
IngestKey = Annotated[KeyRecord, Depends(ROLE_CHECKS["ingest"])]
#: Every GET.
ReadKey = Annotated[KeyRecord, Depends(ROLE_CHECKS["read"])]
#: Everything that changes configuration or starts work: keys, tasks, prompts, jobs.
AdminKey = Annotated[KeyRecord, Depends(ROLE_CHECKS["admin"])]


async def still_active(context: ApiContext, key: KeyRecord) -> bool:
    """Whether ``key`` is still active: what a long-lived response re-checks as it runs."""
    return await active_key(context, key.key_hash) is not None
