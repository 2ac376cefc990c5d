"""``/ui/events``: a live tail of the log, filtered by task or event type (audit, debugging).

Key events are shown to admin keys only, as only they may list keys through the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.api.deps import ApiContext, ContextDep, still_active
from services.api.ui import logtail, render
from services.api.ui.routes.jobs import filters, task_names
from services.api.ui.session import Session, UiSession
from shared.events.registry import EVENT_TYPES

router = APIRouter(prefix="/events")
#: Records read back from each partition when the page opens.
BACKLOG = 200


@router.get("", response_class=HTMLResponse)
async def events_page(
    request: Request,
    ui: Session,
    context: ContextDep,
    task_id: Annotated[str | None, Query()] = None,
    type: Annotated[str | None, Query()] = None,
) -> Response:
    task, _ = filters(task_id, None)
    names = await context.reads.run(task_names)
    types = sorted(t for t in EVENT_TYPES if ui.is_admin or not t.startswith("kaizen.key."))
    return render.page(
        request,
        "events.html",
        ui=ui,
        names=names,
        types=types,
        task_id=str(task) if task else "",
        type=type if type in types else "",
    )


@router.get("/stream")
async def events_stream(
    ui: Session,
    context: ContextDep,
    task_id: Annotated[str | None, Query()] = None,
    type: Annotated[str | None, Query()] = None,
) -> EventSourceResponse:
    """Each matching record as a ``log`` event (a table row), oldest first."""
    task, _ = filters(task_id, None)
    return EventSourceResponse(_tail(context, ui, str(task) if task else None, type or None))


async def _tail(
    context: ApiContext, ui: UiSession, task_id: str | None, type_: str | None
) -> AsyncIterator[ServerSentEvent]:
    topics = [context.topics.tasks, *([context.topics.keys] if ui.is_admin else [])]
    names: dict[str, str] = {}
    active = True

    async def keep_going() -> bool:
        nonlocal active
        active = await still_active(context, ui.key)
        return active

    async for entry in logtail.follow(context.settings.resolved_kafka_bootstrap, topics, BACKLOG, keep_going):
        if (task_id and entry.task_id != task_id) or (type_ and entry.type != type_):
            continue
        if entry.task_id and entry.task_id not in names:
            names = await context.reads.run(task_names)
        yield ServerSentEvent(data=render.fragment("_event_row.html", e=entry, names=names), event="log")
    if not active:
        yield ServerSentEvent(data=render.fragment("_signed_out.html"), event="signed-out")
