"""``/api/v1/tasks``: create, list, read, change and delete tasks.

A new task's id is derived from its name (and how many tasks of that name were
deleted), so two racing creates append the same id to the same partition and the
projector keeps the first: the loser gets 409 like any other duplicate.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from cryptography.fernet import Fernet
from fastapi import APIRouter, Response
from sqlalchemy import Connection

from services.api import domain, views
from services.api.deps import (
    AdminKey,
    FernetDep,
    ReadKey,
    Reads,
    RequestId,
    SettingsDep,
    WriterDep,
)
from services.api.pagination import Cursor, InvalidCursor, Limit, decode_cursor
from services.api.problems import ProblemError, conflict, invalid, not_found
from services.api.queries import tasks
from services.api.schemas.common import problem_responses
from services.api.schemas.tasks import NOT_NULLABLE, TaskCreate, TaskPage, TaskResponse, TaskUpdate
from services.api.validation import FieldError
from shared.events.tasks import TaskCreated, TaskDeleted, TaskUpdated
from shared.git_policy import Origin
from shared.model_policy import ModelRules, model_problems
from shared.secrets import encrypt_token

router = APIRouter(prefix="/tasks", tags=["tasks"])


def _duplicate(name: str) -> ProblemError:
    return conflict(f"a task named {name!r} exists already")


@router.post("", status_code=201, responses=problem_responses(401, 409, 422, 503, 504))
async def create_task(
    _: AdminKey,
    body: TaskCreate,
    reads: Reads,
    writer: WriterDep,
    fernet: FernetDep,
    rid: RequestId,
    config: SettingsDep,
) -> TaskResponse:
    """Create a task. 409 when a task of that name (ignoring case) exists; 422 when its Git
    settings point at a host outside the server's `KAIZEN_GIT_HOSTS`, when it names a model
    outside `KAIZEN_ALLOWED_MODELS`, or when its `cost_budget` cannot be enforced because a
    model it uses has no known price."""
    token = body.git_token.get_secret_value() if body.git_token else None
    settings = body.model_dump(exclude={"git_token"})
    settings.update(
        evaluator_config=body.evaluator_config or {},
        git_token_encrypted=encrypt_token(fernet, token) if token else None,
    )
    errors = (
        domain.schema_problems(body.input_schema)
        + domain.git_target_problems(settings, config.git_host_allowlist)
        + domain.missing_for_auto_pr(settings, token is not None)
        + _model_errors(settings, config.model_rules)
    )
    if errors:
        raise invalid(errors)
    task_id = await reads.run(functools.partial(_new_task_id, body.name))
    outcome = await writer.decide(rid, TaskCreated(task_id=task_id, request_id=rid, **settings))
    if not outcome.accepted:
        raise _duplicate(body.name)
    return await views.shared_task_view(reads, task_id)


def _new_task_id(name: str, conn: Connection) -> uuid.UUID:
    """The id a new task of this name gets; a 409 problem when a live task has the name."""
    key = domain.name_key(name)
    if tasks.live_name_exists(conn, key):
        raise _duplicate(name)
    return domain.task_id_for(key, tasks.deleted_count(conn, key))


@router.get("", responses=problem_responses(401, 422))
async def list_tasks(_: ReadKey, reads: Reads, limit: Limit = 50, cursor: Cursor = None) -> TaskPage:
    """Tasks, newest first, a page at a time: pass `next_cursor` back as `cursor`."""
    try:
        after = decode_cursor(cursor) if cursor is not None else None
    except InvalidCursor as exc:
        raise invalid([FieldError(field="cursor", message=str(exc))]) from exc
    return await reads.run(functools.partial(views.task_page_in, limit, after))


@router.get("/{task_id}", responses=problem_responses(401, 404, 422))
async def get_task(_: ReadKey, task_id: uuid.UUID, reads: Reads) -> TaskResponse:
    return await views.shared_task_view(reads, task_id)


@router.patch("/{task_id}", responses=problem_responses(401, 404, 422, 503, 504))
async def update_task(
    _: AdminKey,
    task_id: uuid.UUID,
    body: TaskUpdate,
    reads: Reads,
    writer: WriterDep,
    fernet: FernetDep,
    rid: RequestId,
    config: SettingsDep,
) -> TaskResponse:
    """Change some settings; fields left out keep their value, ``null`` clears an optional one.

    Changing `git_provider`, `git_base_url` or `git_repo` forgets the stored Git token unless
    a new `git_token` comes in the same request."""
    # A read of its own, not a shared one: the changes are worked out from this row.
    row = await reads.run(lambda conn: views.live_task_in(conn, task_id))
    changes = _changes(body, row, fernet, config.git_host_allowlist, config.model_rules)
    if changes:
        outcome = await writer.decide(rid, TaskUpdated(task_id=task_id, changes=changes))
        if not outcome.accepted:
            raise not_found(f"task {task_id} not found")
    return await views.shared_task_view(reads, task_id)


@router.delete("/{task_id}", status_code=204, responses=problem_responses(401, 404, 422, 503, 504))
async def delete_task(
    _: AdminKey, task_id: uuid.UUID, reads: Reads, writer: WriterDep, rid: RequestId
) -> Response:
    """Delete a task. Its history stays in the log; its name can be used again."""
    await views.live_task(reads, task_id)
    await writer.write(rid, TaskDeleted(task_id=task_id))
    return Response(status_code=204)


# The settings each model problem depends on: an update is refused only for what it changes,
# so a task saved under an older allowlist can still be edited (its jobs are refused instead).
_MODEL_PROBLEM_SOURCES = {
    "teacher_model": {"teacher_model"},
    "judge_model": {"judge_model"},
    "evaluator_config.task_model": {"evaluator_config"},
    "cost_budget": {"cost_budget", "teacher_model", "judge_model", "evaluator_config"},
}


def _model_errors(
    settings: dict[str, Any], rules: ModelRules, changed: set[str] | None = None
) -> list[FieldError]:
    """The task's models against the allowlist and its budget against known prices (422s)."""
    return [
        FieldError(field=name, message=message)
        for name, message in model_problems(settings, rules).items()
        if changed is None or _MODEL_PROBLEM_SOURCES[name] & changed
    ]


def _changes(
    body: TaskUpdate, row: Any, fernet: Fernet, allowed: tuple[Origin, ...], models: ModelRules
) -> dict[str, Any]:
    """The settings that really change (event field names), or a 422 naming what is wrong."""
    provided = set(body.model_fields_set)
    errors = [
        FieldError(field=n, message="must not be null")
        for n in NOT_NULLABLE
        if n in provided and getattr(body, n) is None
    ]
    if body.name is not None and body.name.strip() != row.name:
        errors.append(FieldError(field="name", message="cannot be changed; create a new task instead"))
    current = dict(row.settings)
    wanted = body.model_dump(mode="json", include=provided - {"name", "git_token"})
    changes = {name: value for name, value in wanted.items() if current.get(name) != value}
    token_set = row.git_token_encrypted is not None
    if "git_token" in provided and (body.git_token is not None or token_set):
        token = body.git_token.get_secret_value() if body.git_token else None
        changes["git_token_encrypted"] = encrypt_token(fernet, token) if token else None
        token_set = token is not None
    cleared = domain.token_clearing(changes, body.git_token is not None, token_set)
    changes.update(cleared)
    token_set = token_set and not cleared
    merged = {**current, **changes}
    if "input_schema" in provided:
        errors += domain.schema_problems(merged.get("input_schema"))
    errors += domain.git_target_problems(merged, allowed)
    errors += _model_errors(merged, models, changed=set(changes))
    missing = domain.missing_for_auto_pr(merged, token_set)
    if cleared:
        missing = [domain.TOKEN_RESEND if e.field == "git_token" else e for e in missing]
    errors += missing
    if errors:
        raise invalid(errors)
    return changes
