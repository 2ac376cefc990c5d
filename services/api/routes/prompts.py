"""``/api/v1/prompts/{task_id}``: the active prompt (applications' hot path), versions,
registration of the prompt the application runs today, activation.

``GET /prompts/{task_id}`` is one lookup on the (task_id, status) index. It is not
cached: a cache would need its own freshness query (the task's projector offset) to
keep read-your-writes across API processes, costing as much as the lookup itself.
"""

from __future__ import annotations

import functools
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy import Connection

from services.api import views
from services.api.deps import AdminKey, ReadKey, Reads, RequestId, WriterDep
from services.api.pagination import Limit, Offset
from services.api.problems import conflict, invalid, not_found
from services.api.queries import prompts
from services.api.schemas.common import problem_responses
from services.api.schemas.prompts import ActivateRequest, PromptRegistration, PromptVersionResponse
from services.api.validation import FieldError
from shared.events.base import derive_id
from shared.events.prompts import PromptActivated, PromptVersionCreated
from shared.events.tasks import PromptContract, input_field_names
from shared.prompt_contract import PromptContractError, parse_prompt

router = APIRouter(prefix="/prompts", tags=["prompts"])


@router.get("/{task_id}", responses=problem_responses(401, 404, 422))
async def active_prompt(_: ReadKey, task_id: uuid.UUID, reads: Reads) -> PromptVersionResponse:
    """The task's active prompt version. 404 when the task has none (or does not exist)."""
    # What every application asks for its prompt: concurrent asks for one task share a query.
    query = prompts.active_query(task_id)
    row = await reads.run(lambda conn: conn.execute(query).first(), share=("active-prompt", task_id))
    if row is None:
        raise not_found(f"task {task_id} has no active prompt")
    return PromptVersionResponse.from_row(row)


@router.get("/{task_id}/versions", responses=problem_responses(401, 404, 422))
async def prompt_versions(
    _: ReadKey,
    task_id: uuid.UUID,
    reads: Reads,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[PromptVersionResponse]:
    """Every version of the task's prompt, newest first."""
    _, rows = await reads.run(functools.partial(versions_in, task_id, limit, offset))
    return [PromptVersionResponse.from_row(row) for row in rows]


def versions_in(task_id: uuid.UUID, limit: int, offset: int, conn: Connection) -> tuple[Any, list[Any]]:
    """The task's row (a 404 problem when there is no such task) and a page of its versions, newest first."""
    return views.live_task_in(conn, task_id), prompts.page(conn, task_id, limit, offset)


@router.post("/{task_id}", status_code=201, responses=problem_responses(401, 404, 409, 422, 503, 504))
async def register_prompt(
    _: AdminKey,
    task_id: uuid.UUID,
    body: PromptRegistration,
    reads: Reads,
    writer: WriterDep,
    rid: RequestId,
) -> PromptVersionResponse:
    """Register the prompt the application runs today as a version (`source: "user"`).

    It is the baseline the next job must beat. The text must be valid under the task's
    `prompt_contract`; with `activate` (the default) it becomes the active prompt at once.

    Each POST is a new registration (registering the same text again, say to return to it
    after a job's version, is a deliberate act), so the version id is not derived from the
    text: it is derived from the request id, which every event of the request carries.
    """
    task = await views.live_task(reads, task_id)
    _check_contract(task.settings, body.prompt_text)
    version_id = derive_id("user-prompt-version", task_id, rid)
    created = PromptVersionCreated(
        prompt_version_id=version_id,
        task_id=task_id,
        job_id=None,
        prompt_text=body.prompt_text,
        source="user",
        optimizer="none",
    )
    if body.activate:
        # Both in one append, on the task's partition in order: once the activation's outcome
        # is projected, so is the version, and a client never sees it as a draft in between.
        await writer.append(rid, [created, PromptActivated(task_id=task_id, prompt_version_id=version_id)])
        outcome = await writer.watcher.outcome(rid, writer.timeout)
        if not outcome.accepted:
            raise conflict(outcome.detail or f"version {version_id} could not be activated")
    else:
        await writer.write(rid, created)
    return PromptVersionResponse.from_row(await _version(reads, task_id, version_id))


def _check_contract(settings: dict[str, Any], prompt_text: str) -> None:
    # A task projected before contracts existed has none stored; it has always been `system`.
    contract: PromptContract = settings.get("prompt_contract", "system")
    try:
        parse_prompt(contract, prompt_text, input_field_names(settings.get("input_schema")))
    except PromptContractError as exc:
        message = f"is not a valid {contract!r} prompt: {exc}"
        raise invalid([FieldError(field="prompt_text", message=message)]) from exc


@router.post("/{task_id}/activate", responses=problem_responses(401, 404, 409, 422, 503, 504))
async def activate_prompt(
    _: AdminKey,
    task_id: uuid.UUID,
    reads: Reads,
    writer: WriterDep,
    rid: RequestId,
    version_id: Annotated[uuid.UUID | None, Query(description="The draft version to activate.")] = None,
    body: Annotated[ActivateRequest | None, Body(description='Alternatively, `{"version_id": …}`.')] = None,
) -> PromptVersionResponse:
    """Make a draft version the active prompt; the previously active one is archived."""
    wanted = _version_id(version_id, body)
    row = await reads.run(functools.partial(_task_version, task_id, wanted))
    if row is None:
        raise not_found(f"prompt version {wanted} of task {task_id} not found")
    if row.status != "draft":
        raise conflict(f"version {wanted} is {row.status}; only a draft can be activated")
    outcome = await writer.decide(rid, PromptActivated(task_id=task_id, prompt_version_id=wanted))
    if not outcome.accepted:
        raise conflict(outcome.detail or f"version {wanted} is not a draft")
    return PromptVersionResponse.from_row(await _version(reads, task_id, wanted))


def _task_version(task_id: uuid.UUID, version_id: uuid.UUID, conn: Connection) -> Any | None:
    """The version's row, or None; a 404 problem when there is no such task."""
    views.live_task_in(conn, task_id)
    return prompts.get(conn, task_id, version_id)


async def _version(reads: Reads, task_id: uuid.UUID, version_id: uuid.UUID) -> Any | None:
    """The version's row in a read begun now: after a write, it shows the write."""
    return await reads.run(lambda conn: prompts.get(conn, task_id, version_id))


def _version_id(query: uuid.UUID | None, body: ActivateRequest | None) -> uuid.UUID:
    if query is not None and body is not None and body.version_id != query:
        raise invalid([FieldError(field="version_id", message="differs between the query and the body")])
    chosen = query if query is not None else body.version_id if body is not None else None
    if chosen is None:
        raise invalid(
            [FieldError(field="version_id", message="is required (as a query parameter or in the body)")]
        )
    return chosen
