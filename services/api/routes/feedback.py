"""``/api/v1/feedback`` and ``/api/v1/tasks/{task_id}/seed`` (the batch: ``feedback_batch.py``).

Scored outputs and seed examples. Every write accepts an
``Idempotency-Key`` (``services/api/idempotency.py``): its retries write nothing twice.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Response, UploadFile
from sqlalchemy import Connection

from services.api import domain, idempotency, views
from services.api.deps import IngestKey, ReadKey, Reads, RequestId, WriterDep
from services.api.idempotency import IdempotencyKey
from services.api.pagination import Limit, Offset
from services.api.problems import ProblemError, invalid
from services.api.queries import feedback
from services.api.schemas.common import problem_responses
from services.api.schemas.feedback import (
    FeedbackCreate,
    FeedbackResponse,
    SeedLineError,
    SeedsRejected,
    SeedUploadResult,
)
from services.api.seeds import MAX_FILE_BYTES, ParsedSeeds, SeedFileError, in_parts, parse_seeds
from shared.events.feedback import FeedbackRecorded, Seed, SeedsUploaded

router = APIRouter(tags=["feedback"])


@router.post("/feedback", status_code=201, responses=problem_responses(401, 404, 422, 503, 504))
async def record_feedback(
    key: IngestKey,
    body: FeedbackCreate,
    reads: Reads,
    writer: WriterDep,
    rid: RequestId,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> FeedbackResponse:
    """Record one scored output. Live feedback (any source but `seed`) counts toward the threshold.

    With an `Idempotency-Key`, a retry answers with the first attempt's feedback (header
    `Idempotent-Replayed: true`) and never records it twice."""
    keyed = idempotency.scope(key, "feedback", idempotency_key)
    feedback_id = keyed.event_id() if keyed is not None else uuid.uuid4()
    if keyed is None:
        task = await views.live_task(reads, body.task_id)
    else:
        first, task = await reads.run(functools.partial(_first_or_task, feedback_id, body.task_id))
        if first is not None:
            _check_same(first, body.model_dump(mode="json"))
            response.headers[idempotency.REPLAYED] = "true"
            return FeedbackResponse.from_row(first)
    mismatch = domain.input_mismatch(task.settings.get("input_schema"), body.inputs)
    if mismatch:
        raise invalid(mismatch)
    [written] = await writer.write(rid, FeedbackRecorded(feedback_id=feedback_id, **body.model_dump()))
    if keyed is None:
        # A fresh id: the row the projector applied is this event, field for field.
        return FeedbackResponse.recorded(written)
    row = await reads.run(lambda conn: feedback.get(conn, feedback_id))
    _check_same(row, body.model_dump(mode="json"))  # a racing attempt with another body may have won
    return FeedbackResponse.from_row(row)


def _first_or_task(feedback_id: uuid.UUID, task_id: uuid.UUID, conn: Connection) -> tuple[Any | None, Any]:
    """A keyed attempt's row if an earlier attempt stored it, else the task's (a 404 problem
    when there is no such task): a replay answers even after its task was deleted."""
    first = feedback.get(conn, feedback_id)
    return (first, None) if first is not None else (None, views.live_task_in(conn, task_id))


def _check_same(row: Any, item: dict[str, Any]) -> None:
    if idempotency.stored_fingerprint(row) != domain.fingerprint(item):
        raise idempotency.reused()


@router.get("/feedback", responses=problem_responses(401, 422))
async def list_feedback(
    _: ReadKey,
    reads: Reads,
    task_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[FeedbackResponse]:
    """Feedback (and seeds), newest first, optionally of one task."""
    rows = await reads.run(lambda conn: feedback.page(conn, task_id, limit, offset))
    return [FeedbackResponse.from_row(row) for row in rows]


@router.post(
    "/tasks/{task_id}/seed",
    status_code=201,
    responses={
        **problem_responses(400, 401, 404, 413, 503, 504),
        422: {
            "model": SeedsRejected,
            "description": "A field broke a rule, or no line of the file is a seed",
        },
    },
)
async def upload_seeds(
    key: IngestKey,
    task_id: uuid.UUID,
    file: Annotated[UploadFile, File(description="JSONL: one {inputs, output, score?, metadata?} per line.")],
    reads: Reads,
    writer: WriterDep,
    rid: RequestId,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> SeedUploadResult:
    """Upload seed examples. They train the optimizer but never count toward the threshold.

    With an `Idempotency-Key`, a retry of the same file answers like the first attempt
    (header `Idempotent-Replayed: true` once any of its seeds is stored) and adds no seed twice."""
    keyed = idempotency.scope(key, f"seed/{task_id}", idempotency_key)
    task, seeds = await reads.run(functools.partial(_task_seeds, task_id))
    room = domain.SEED_LIMIT - seeds
    if room <= 0 and keyed is None:
        raise _seed_limit()
    data = await file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ProblemError(
            413, f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB", slug="file-too-large"
        )
    schema = task.settings.get("input_schema")
    ids = None if keyed is None else functools.partial(keyed.event_id, "seed")
    first: dict[str, Any] = {}
    if keyed is not None:
        # The seeds an earlier attempt stored count back into the room, so a retry accepts
        # exactly the lines the first attempt accepted.
        candidates = await _parsed(data, schema, domain.SEED_LIMIT, ids)
        wanted = [s.feedback_id for s in candidates.seeds]
        first = await reads.run(lambda conn: idempotency.feedback_rows_in(conn, wanted))
        room += len(first)
        if room <= 0:
            raise _seed_limit()
    parsed = await _parsed(data, schema, room, ids)
    if not parsed.seeds:
        detail = f"none of the file's lines is a valid seed ({parsed.rejected} rejected)"
        raise ProblemError(422, detail, title="No valid seed", slug="invalid-seeds", errors=parsed.errors)
    stored = {str(s.feedback_id): _seed_item(task_id, s) for s in parsed.seeds}
    if any(idempotency.stored_fingerprint(row) != domain.fingerprint(stored[i]) for i, row in first.items()):
        raise idempotency.reused()
    new = [s for s in parsed.seeds if str(s.feedback_id) not in first]
    upload_id = keyed.event_id("upload") if keyed is not None else uuid.uuid4()
    written: dict[str, dict[str, Any]] = {}  # a keyed write's new items, checked once written
    if new:
        parts = in_parts(new)
        await writer.write(
            rid,
            *(
                SeedsUploaded(task_id=task_id, upload_id=upload_id, part=n, parts=len(parts), seeds=part)
                for n, part in enumerate(parts, start=1)
            ),
        )
        if keyed is not None:
            written = {i: stored[i] for i in stored if i not in first}
    total = await reads.run(functools.partial(_checked_seed_count, task_id, written))
    if first:
        response.headers[idempotency.REPLAYED] = "true"
    return SeedUploadResult(
        upload_id=upload_id,
        accepted=len(parsed.seeds),
        rejected=parsed.rejected,
        errors=[SeedLineError(**e) for e in parsed.errors],
        total_seeds=total,
        seed_limit=domain.SEED_LIMIT,
    )


def _task_seeds(task_id: uuid.UUID, conn: Connection) -> tuple[Any, int]:
    """The task's row (a 404 problem when there is no such task) and how many seeds it has."""
    return views.live_task_in(conn, task_id), feedback.seed_count(conn, task_id)


def _checked_seed_count(task_id: uuid.UUID, written: dict[str, dict[str, Any]], conn: Connection) -> int:
    """The task's seeds after the upload; first, a 422 problem when a racing attempt with
    another body stored one of ``written``'s ids before this one (``idempotency.check_written_in``)."""
    if written:
        idempotency.check_written_in(conn, written)
    return feedback.seed_count(conn, task_id)


def _seed_limit() -> ProblemError:
    return ProblemError(
        400, f"the task has reached its limit of {domain.SEED_LIMIT} seeds", slug="seed-limit"
    )


async def _parsed(data: bytes, schema: Any, room: int, ids: Callable[[int], uuid.UUID] | None) -> ParsedSeeds:
    try:
        # Parsing thousands of lines is CPU work: off the event loop, so other requests go on.
        return await asyncio.to_thread(parse_seeds, data, schema, room, domain.SEED_LIMIT, ids)
    except SeedFileError as exc:
        raise ProblemError(400, str(exc), slug="invalid-seed-file") from exc


def _seed_item(task_id: uuid.UUID, seed: Seed) -> dict[str, Any]:
    return {"task_id": str(task_id), "source": "seed", **seed.model_dump(mode="json")}
