"""``/ui`` (the Tasks page): every task with its live figures, as ``GET /api/v1/tasks`` shows them."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.api import views
from services.api.deps import ContextDep
from services.api.pagination import InvalidCursor, decode_cursor
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
    page = await context.reads.run(functools.partial(views.task_page_in, PAGE, after))
    return render.page(request, "tasks.html", ui=ui, tasks=page.items, next_cursor=page.next_cursor)
