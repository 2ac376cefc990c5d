"""``/ui/tasks/{task_id}/prompts``: a task's prompt versions, a diff of any two, and activation."""

from __future__ import annotations

import functools
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.api import errors
from services.api.deps import ApiContext, ContextDep
from services.api.problems import ProblemError
from services.api.routes import prompts as api_prompts
from services.api.schemas.prompts import PromptVersionResponse
from services.api.ui import present, render
from services.api.ui.problems import attempt
from services.api.ui.session import AdminAction, Refused, Session, UiSession

router = APIRouter(prefix="/tasks/{task_id}/prompts")
LIMIT = 200


async def versions_page(
    request: Request,
    ui: UiSession,
    context: ApiContext,
    task_id: uuid.UUID,
    a: uuid.UUID | None = None,
    b: uuid.UUID | None = None,
    status_code: int = 200,
    **notes: str,
) -> Response:
    try:
        task, rows = await context.reads.run(functools.partial(api_prompts.versions_in, task_id, LIMIT, 0))
    except ProblemError as exc:
        raise Refused(404, f"There is no task {task_id}.") from exc
    versions = [PromptVersionResponse.from_row(r) for r in rows]
    by_id = {v.id: v for v in versions}
    # By default the two newest versions: usually "what the last job changed".
    old = by_id.get(a) if a else (versions[1] if len(versions) > 1 else None)
    new = by_id.get(b) if b else (versions[0] if versions else None)
    lines = present.diff(old.prompt_text, new.prompt_text) if old and new else []
    return render.page(
        request,
        "prompts.html",
        status_code,
        ui=ui,
        task=task,
        versions=versions,
        old=old,
        new=new,
        lines=lines,
        **notes,
    )


@router.get("", response_class=HTMLResponse)
async def prompt_versions(
    request: Request,
    ui: Session,
    context: ContextDep,
    task_id: uuid.UUID,
    a: Annotated[uuid.UUID | None, Query(description="The older version of the diff.")] = None,
    b: Annotated[uuid.UUID | None, Query(description="The newer version of the diff.")] = None,
) -> Response:
    return await versions_page(request, ui, context, task_id, a, b)


@router.post("/{version_id}/activate", response_class=HTMLResponse)
async def activate(
    request: Request, ui: AdminAction, context: ContextDep, task_id: uuid.UUID, version_id: uuid.UUID
) -> Response:
    rid = errors.request_id(request)
    call = api_prompts.activate_prompt(
        _=ui.key, task_id=task_id, reads=context.reads, writer=context.writer, rid=rid, version_id=version_id
    )
    outcome = await attempt(request, "activate this version", call)
    if outcome.problem is not None:
        return await versions_page(
            request, ui, context, task_id, status_code=outcome.status, problem=outcome.problem
        )
    number = outcome.value.version_number
    return await versions_page(request, ui, context, task_id, notice=f"Version {number} is now active.")
