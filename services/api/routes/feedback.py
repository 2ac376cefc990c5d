"""``/api/v1/feedback`` and ``/api/v1/tasks/{task_id}/seed``: scored outputs and seed examples."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from services.api import domain, views
from services.api.deps import IngestKey, ReadKey, ReadModel, RequestId, WriterDep
from services.api.problems import ProblemError, invalid
from services.api.queries import feedback
from services.api.schemas.common import problem_responses
from services.api.schemas.feedback import FeedbackCreate, FeedbackResponse, SeedLineError, SeedUploadResult
from services.api.seeds import MAX_FILE_BYTES, SeedFileError, in_parts, parse_seeds
from shared.events.feedback import FeedbackRecorded, SeedsUploaded

router = APIRouter(tags=["feedback"])


@router.post("/feedback", status_code=201, responses=problem_responses(401, 404, 422, 503, 504))
async def record_feedback(
    _: IngestKey, body: FeedbackCreate, db: ReadModel, writer: WriterDep, rid: RequestId
) -> FeedbackResponse:
    """Record one scored output. Live feedback (any source but `seed`) counts toward the threshold."""
    async with db.connect() as conn:
        task = await views.existing_task(conn, body.task_id)
    mismatch = domain.input_mismatch(task.settings.get("input_schema"), body.inputs)
    if mismatch:
        raise invalid(mismatch)
    event = FeedbackRecorded(feedback_id=uuid.uuid4(), **body.model_dump())
    await writer.write(rid, event)
    async with db.connect() as conn:
        row = await feedback.get(conn, event.feedback_id)
    return FeedbackResponse.from_row(row)


@router.get("/feedback", responses=problem_responses(401, 422))
async def list_feedback(
    _: ReadKey,
    db: ReadModel,
    task_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[FeedbackResponse]:
    """Feedback (and seeds), newest first, optionally of one task."""
    async with db.connect() as conn:
        rows = await feedback.page(conn, task_id, limit, offset)
    return [FeedbackResponse.from_row(row) for row in rows]


@router.post(
    "/tasks/{task_id}/seed", status_code=201, responses=problem_responses(400, 401, 404, 413, 422, 503, 504)
)
async def upload_seeds(
    _: IngestKey,
    task_id: uuid.UUID,
    file: Annotated[UploadFile, File(description="JSONL: one {inputs, output, score?, metadata?} per line.")],
    db: ReadModel,
    writer: WriterDep,
    rid: RequestId,
) -> SeedUploadResult:
    """Upload seed examples. They train the optimizer but never count toward the threshold."""
    async with db.connect() as conn:
        task = await views.existing_task(conn, task_id)
        room = domain.SEED_LIMIT - await feedback.seed_count(conn, task_id)
    if room <= 0:
        raise ProblemError(
            400, f"the task has reached its limit of {domain.SEED_LIMIT} seeds", slug="seed-limit"
        )
    data = await file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ProblemError(
            413, f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB", slug="file-too-large"
        )
    try:
        # Parsing thousands of lines is CPU work: off the event loop, so other requests go on.
        parsed = await asyncio.to_thread(
            parse_seeds, data, task.settings.get("input_schema"), room, domain.SEED_LIMIT
        )
    except SeedFileError as exc:
        raise ProblemError(400, str(exc), slug="invalid-seed-file") from exc
    if not parsed.seeds:
        detail = f"none of the file's lines is a valid seed ({parsed.rejected} rejected)"
        raise ProblemError(422, detail, title="No valid seed", slug="invalid-seeds", errors=parsed.errors)
    upload_id, parts = uuid.uuid4(), in_parts(parsed.seeds)
    await writer.write(
        rid,
        *(
            SeedsUploaded(task_id=task_id, upload_id=upload_id, part=n, parts=len(parts), seeds=part)
            for n, part in enumerate(parts, start=1)
        ),
    )
    async with db.connect() as conn:
        total = await feedback.seed_count(conn, task_id)
    return SeedUploadResult(
        upload_id=upload_id,
        accepted=len(parsed.seeds),
        rejected=parsed.rejected,
        errors=[SeedLineError(**e) for e in parsed.errors],
        total_seeds=total,
        seed_limit=domain.SEED_LIMIT,
    )
