"""``/ui`` (the Tasks page): every task with its live figures, as ``GET /api/v1/tasks`` shows them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.api import views
from services.api.deps import ContextDep
from services.api.pagination import InvalidCursor, decode_cursor, encode_cursor
from services.api.queries import tasks
from services.api.ui import render
from services.api.ui.session import Refused, Session

router = APIRouter()
PAGE = 100


@router.get("", response_class=HTMLResponse)
async def tasks_page(
    request: Request, ui: Session, context: ContextDep, cursor: str | None = None
) -> Response:
    try:
        after = decode_cursor(cursor) if cursor else None
    except InvalidCursor as exc:
        raise Refused(422, "That page link is broken; start from the first page.") from exc
    async with context.engine.connect() as conn:
        rows = await tasks.page(conn, PAGE + 1, after)
        items = await views.task_views(conn, rows[:PAGE])
    last = rows[PAGE - 1] if len(rows) > PAGE else None
    next_cursor = encode_cursor(last.created_at, last.id) if last else None
    return render.page(request, "tasks.html", ui=ui, tasks=items, next_cursor=next_cursor)
