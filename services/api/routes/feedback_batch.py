"""``/api/v1/feedback/batch``: up to 1,000 scored outputs, one result per item.

Every write accepts an ``Idempotency-Key`` (``services/api/idempotency.py``): its retries
write nothing twice.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlalchemy import Connection, select

from services.api import domain, idempotency
from services.api.deps import IngestKey, Reads, RequestId, WriterDep
from services.api.idempotency import IdempotencyKey
from services.api.problems import problem_type
from services.api.schemas.common import FieldErrorOut, problem_responses
from services.api.schemas.feedback import (
    FeedbackBatch,
    FeedbackBatchResult,
    FeedbackCreate,
    FeedbackItemResult,
    ItemProblem,
)
from services.api.storable import may_hold_unstorable, unstorable
from services.api.validation import FieldError, describe, summary
from shared.events.feedback import FeedbackRecorded
from shared.readmodel.tables import tasks

#: Mounted without the router-wide unstorable-text check: the batch judges each item's text
#: itself, so one bad item is refused alone (``routes/__init__.py``).
batch_router = APIRouter(tags=["feedback"])


@batch_router.post("/feedback/batch", responses=problem_responses(401, 422, 503, 504))
async def record_feedback_batch(
    key: IngestKey,
    body: FeedbackBatch,
    reads: Reads,
    writer: WriterDep,
    rid: RequestId,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> FeedbackBatchResult:
    """Record up to 1,000 scored outputs; one result per item, in order.

    Every item is judged first, on its own (shape, storable text, its task, the task's
    input schema): a bad item is refused in its result (`status` 404 or 422 and a
    `problem`) and never sinks the others. The accepted items are then appended in one
    produce call, and the answer comes once the read model shows all of them, like the
    single route's. 503: nothing was acknowledged (part of the batch may still be in the
    log; retry with the same `Idempotency-Key` and nothing is doubled). 504: all of it is in
    the log, not yet all visible.
    """
    keyed = idempotency.scope(key, "feedback-batch", idempotency_key)
    raw: list[Any] = list(body.items)
    ids = [keyed.event_id(i) if keyed is not None else uuid.uuid4() for i in range(len(raw))]
    walk = may_hold_unstorable(await request.body())  # else no item's text needs walking
    judged = [_judge(item, walk) for item in raw]
    task_ids = {j.task_id for j in judged if isinstance(j, FeedbackCreate)}
    first, schemas = await reads.run(functools.partial(_before, ids if keyed is not None else [], task_ids))
    instance = request.url.path
    results: list[FeedbackItemResult] = []
    events: list[FeedbackRecorded] = []
    differing: list[int] = []
    for index, (item, feedback_id) in enumerate(zip(judged, ids, strict=True)):
        if (row := first.get(str(feedback_id))) is not None:
            if not isinstance(item, FeedbackCreate) or not _same(row, item):
                differing.append(index)
            results.append(FeedbackItemResult(index=index, status=201, id=feedback_id))
            continue
        verdict = _verdict(item, schemas)
        if not isinstance(verdict, FeedbackCreate):
            results.append(_refused(index, instance, *verdict))
            continue
        events.append(FeedbackRecorded(feedback_id=feedback_id, **verdict.model_dump()))
        results.append(FeedbackItemResult(index=index, status=201, id=feedback_id))
    if differing:
        raise idempotency.reused([f"items/{i}" for i in differing])
    if events:
        _, positions = await writer.write_placed(rid, *events)
        # Read once the projector applied the write, so the rows are the ones it kept.
        overwritten = functools.partial(idempotency.overwritten, events, positions)
        if keyed is not None and await reads.run(overwritten):
            raise idempotency.reused()
    if first:
        response.headers[idempotency.REPLAYED] = "true"
    accepted = sum(1 for r in results if r.id is not None)
    return FeedbackBatchResult(accepted=accepted, refused=len(results) - accepted, results=results)


def _before(
    ids: list[uuid.UUID], task_ids: set[uuid.UUID], conn: Connection
) -> tuple[dict[str, Any], dict[uuid.UUID, Any]]:
    """The batch's reads before it appends, in one trip: the first attempt's rows, the tasks' schemas.

    ``ids``: the keyed request's ids (none for an unkeyed one, which has no first attempt).
    """
    return idempotency.feedback_rows_in(conn, ids), _task_schemas(conn, task_ids)


def _judge(item: Any, walk: bool) -> FeedbackCreate | list[FieldError]:
    """The item as a feedback, or the rules it broke (before its task is looked at).

    ``walk``: whether the body may hold unstorable text at all (``storable.may_hold_unstorable``).
    """
    if not isinstance(item, dict):
        return [FieldError(field="item", message="must be an object")]
    try:
        judged = FeedbackCreate.model_validate(item)
    except ValidationError as exc:
        return describe(exc.errors())
    text = unstorable(item) if walk else []
    return describe(text) if text else judged


def _task_schemas(conn: Connection, task_ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Each existing task's input schema (``None``: no schema); a missing or deleted task is left out."""
    wanted = [str(t) for t in task_ids]
    schemas: dict[uuid.UUID, Any] = {}
    for start in range(0, len(wanted), idempotency.LOOKUP_CHUNK):
        query = select(tasks.c.id, tasks.c.settings).where(
            tasks.c.id.in_(wanted[start : start + idempotency.LOOKUP_CHUNK]), tasks.c.deleted.is_(False)
        )
        schemas.update(
            {uuid.UUID(row.id): row.settings.get("input_schema") for row in conn.execute(query).all()}
        )
    return schemas


def _verdict(
    item: FeedbackCreate | list[FieldError], schemas: dict[uuid.UUID, Any]
) -> FeedbackCreate | tuple[int, str, list[FieldError]]:
    """The item to record, or why not: (status, problem slug, broken rules)."""
    if not isinstance(item, FeedbackCreate):
        return 422, "validation-error", item
    if item.task_id not in schemas:
        return 404, "not-found", [FieldError(field="task_id", message=f"task {item.task_id} not found")]
    mismatch = domain.input_mismatch(schemas[item.task_id], item.inputs)
    return (422, "validation-error", mismatch) if mismatch else item


def _refused(
    index: int, instance: str, status: int, slug: str, errors: list[FieldError]
) -> FeedbackItemResult:
    problem = ItemProblem(
        type=problem_type(slug),
        title="Not Found" if status == 404 else "Invalid request",
        status=status,
        detail=summary(errors),
        instance=f"{instance}#/items/{index}",
        errors=[FieldErrorOut(field=e.field, message=e.message) for e in errors],
    )
    return FeedbackItemResult(index=index, status=status, problem=problem)


def _same(row: Any, item: FeedbackCreate) -> bool:
    return idempotency.stored_fingerprint(row) == domain.fingerprint(item.model_dump(mode="json"))
