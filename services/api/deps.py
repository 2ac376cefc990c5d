"""Dependencies, declared once as ``Annotated`` aliases (fastapi/full-stack-fastapi-template).

Routes never hold a database connection while they wait for the projector: they open
short connections from ``ReadModel`` (``async with db.connect() as conn``) around each
read, so a burst of waiting writes cannot drain the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from cryptography.fernet import Fernet
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api import errors
from services.api.adapters import ProjectionWatcher, Writer
from services.api.probe import LogProbe
from services.api.problems import ProblemError
from services.api.queries import keys
from services.api.security import hash_key, hashes_match, is_well_formed
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


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.kaizen
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_settings(context: ContextDep) -> Settings:
    return context.settings


def get_engine(context: ContextDep) -> AsyncEngine:
    return context.engine


def get_writer(context: ContextDep) -> Writer:
    return context.writer


def get_fernet(context: ContextDep) -> Fernet:
    return context.fernet


def get_probe(context: ContextDep) -> LogProbe:
    return context.probe


SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadModel = Annotated[AsyncEngine, Depends(get_engine)]
WriterDep = Annotated[Writer, Depends(get_writer)]
FernetDep = Annotated[Fernet, Depends(get_fernet)]
ProbeDep = Annotated[LogProbe, Depends(get_probe)]
#: A fresh id per request: the ``correlation_id`` of every event the request appends.
RequestId = Annotated[str, Depends(errors.request_id)]

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key, `kaizen_` followed by 32 hex digits."
)


def _unauthorized(title: str, detail: str) -> ProblemError:
    return ProblemError(
        401, detail, title=title, slug="unauthorized", headers={"WWW-Authenticate": "X-API-Key"}
    )


async def current_key(db: ReadModel, presented: Annotated[str | None, Security(api_key_header)]) -> Any:
    """The active key presented in ``X-API-Key`` (read on every request: revocation is immediate)."""
    if not presented:
        raise _unauthorized("Missing API key", "send an API key in the X-API-Key header")
    digest = hash_key(presented)
    row = None
    if is_well_formed(presented):
        async with db.connect() as conn:
            row = await keys.active_by_hash(conn, digest)
    if row is None or not hashes_match(row.key_hash, digest):
        raise _unauthorized("Invalid or revoked API key", "the X-API-Key is not an active API key")
    return row


CurrentKey = Annotated[Any, Depends(current_key)]
