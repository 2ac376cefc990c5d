"""``/api/v1/jobs``: exactly the Jobs API page (list, get, retry-pr), plus cancel and history.

Clients poll ``GET /jobs/{job_id}`` until ``SUCCESS``, ``FAILED`` or ``PR_FAILED`` (or
follow ``/stream``). A cancelled job still ends ``FAILED``, so that loop always ends.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from sqlalchemy import Connection
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.api import domain, views
from services.api.adapters import NotYetVisible
from services.api.deps import (
    AdminKey,
    ContextDep,
    ReadKey,
    Reads,
    RequestId,
    SettingsDep,
    WriterDep,
    still_active,
)
from services.api.pagination import MAX_OFFSET, Limit, Offset
from services.api.problems import ProblemError, conflict, not_found
from services.api.queries import jobs, prompts
from services.api.schemas.common import problem_responses
from services.api.schemas.jobs import JOB_EXAMPLE, JobEvent, JobResponse
from shared.events.jobs import JobCancelRequested
from shared.events.prs import PrRetryRequested

#: ``progress_step`` of a job whose optimization is over (``JobCompiled`` was projected).
COMPILED_STEPS = frozenset({"compiled", "publishing_pr"})

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[uuid.UUID, Path(description="The job’s unique identifier")]
STREAM_POLL_SECONDS = 0.25
#: How often an open stream re-checks its key: a revoked key's stream ends within this.
KEY_CHECK_SECONDS = 2.0
RETRY_PENDING = (
    "no outcome of the PR retry arrived in time; the request is in the log and the job was left as it was, "
    "so retrying again is safe"
)


def _example(value: object) -> dict[str, Any]:
    """The seed page's example as the documented answer."""
    return {"content": {"application/json": {"example": value}}}


@router.get(
    "",
    summary="List optimization jobs",
    responses={200: _example([JOB_EXAMPLE]), **problem_responses(401, 422)},
)
async def list_jobs(
    _: ReadKey,
    reads: Reads,
    task_id: Annotated[uuid.UUID | None, Query(description="Filter by task ID")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[JobResponse]:
    """List optimization jobs, optionally filtered by task. Returns newest jobs first."""
    query = jobs.page_query(task_id, limit, offset)
    # Concurrent requests for the same page share its query and its answer, built once (each
    # sees a read begun after it asked; nobody changes the shared list or its jobs).
    page = ("jobs-page", task_id, limit, offset)
    return await reads.run(lambda conn: JobResponse.from_rows(conn.execute(query)), share=page)


@router.get(
    "/{job_id}",
    summary="Get job details",
    responses={200: _example(JOB_EXAMPLE), **problem_responses(401, 404, 422)},
)
async def get_job(_: ReadKey, job_id: JobId, reads: Reads) -> JobResponse:
    """Get details for a specific optimization job."""
    return await views.shared_job_view(reads, job_id)


@router.post(
    "/{job_id}/retry-pr",
    summary="Retry PR creation",
    responses=problem_responses(401, 404, 409, 422, 502, 503, 504),
)
async def retry_pr(
    _: AdminKey, job_id: JobId, reads: Reads, writer: WriterDep, settings: SettingsDep, rid: RequestId
) -> JobResponse:
    """Retry GitHub/GitLab PR creation for a job that completed optimization but failed to create the
    PR (status PR_FAILED). This re-uses the already-compiled prompt version.

    200: the updated job (`SUCCESS`, new `pr_url`). 502: the PR failed again (reason in `detail`).
    504: no outcome within the retry timeout; the job is left as it was and retrying is safe.
    """
    job = await reads.run(functools.partial(_retryable, job_id))
    event = PrRetryRequested(job_id=job_id, task_id=job.task_id)
    try:
        outcome = await writer.decide(rid, event, timeout=settings.retry_pr_timeout_seconds)
    except NotYetVisible as exc:
        raise ProblemError(504, RETRY_PENDING, title="PR retry pending", slug="retry-pending") from exc
    if not outcome.accepted:
        detail = outcome.detail or "the pull request could not be created"
        raise ProblemError(502, detail, title="PR creation failed", slug="pr-failed")
    return await views.shared_job_view(reads, job_id)


def _retryable(job_id: uuid.UUID, conn: Connection) -> JobResponse:
    """The job, if its PR can be retried: it failed, and the version it compiled is stored."""
    job = views.job_in(conn, job_id)
    if job.status != "PR_FAILED":
        raise conflict(f"job {job_id} is {job.status}, not PR_FAILED; only a failed PR can be retried")
    version = job.prompt_version_id
    if version is None or prompts.get(conn, job.task_id, version) is None:
        raise not_found(f"the prompt version of job {job_id} was not found")
    return job


@router.post("/{job_id}/cancel", status_code=202, responses=problem_responses(401, 404, 409, 422, 503, 504))
async def cancel_job(
    _: AdminKey, job_id: JobId, reads: Reads, writer: WriterDep, rid: RequestId
) -> JobResponse:
    """Ask the job to stop at its next safe point; it then ends `FAILED` ("cancelled").

    409 once the job has ended, or once it has compiled (`progress_step` `compiled` or
    `publishing_pr`): the optimizer's work is done and the result is stored. A cancel
    accepted just before that point is too late to stop it; the job's events show both."""
    job = await views.shared_job_view(reads, job_id)
    if job.status in domain.TERMINAL_STATUSES:
        raise conflict(f"job {job_id} has ended ({job.status}); there is nothing to cancel")
    if job.progress_step in COMPILED_STEPS:
        raise conflict(
            f"job {job_id} has finished optimizing and its prompt version is stored "
            f"({job.progress_step}); it can no longer be cancelled"
        )
    await writer.write(rid, JobCancelRequested(job_id=job_id, task_id=job.task_id))
    return await views.shared_job_view(reads, job_id)


@router.get("/{job_id}/events", responses=problem_responses(401, 404, 422))
async def job_history(_: ReadKey, job_id: JobId, reads: Reads) -> list[JobEvent]:
    """The job's whole history, in log order."""
    rows = await reads.run(functools.partial(_history, job_id))
    return [JobEvent.from_row(row) for row in rows]


def _history(job_id: uuid.UUID, conn: Connection) -> list[Any]:
    views.job_in(conn, job_id)
    return jobs.events(conn, job_id)


@router.get(
    "/{job_id}/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "Server-Sent Events, one per job event", "content": {"text/event-stream": {}}},
        **problem_responses(401, 404, 422),
    },
)
async def stream_job(
    key: ReadKey,
    context: ContextDep,
    job_id: JobId,
    reads: Reads,
    last_event_id: Annotated[
        int | None, Header(alias="Last-Event-ID", ge=0, le=MAX_OFFSET, description="Resume after this id.")
    ] = None,
) -> EventSourceResponse:
    """The job's events as Server-Sent Events (`event` = type, `id` = offset); ends with the job,
    or within a few seconds of the key's revocation."""
    await views.shared_job_view(reads, job_id)

    async def key_active() -> bool:
        return await still_active(context, key)

    return EventSourceResponse(
        _follow(reads, job_id, -1 if last_event_id is None else last_event_id, key_active)
    )


async def _follow(
    reads: Reads, job_id: uuid.UUID, after: int, key_active: Callable[[], Awaitable[bool]]
) -> AsyncIterator[ServerSentEvent]:
    loop = asyncio.get_running_loop()
    next_key_check = loop.time() + KEY_CHECK_SECONDS
    while True:
        # The key was checked when the stream opened; a revocation must not leave it open.
        if loop.time() >= next_key_check:
            if not await key_active():
                return
            next_key_check = loop.time() + KEY_CHECK_SECONDS
        status, rows = await reads.run(functools.partial(progress, job_id, after))
        for row in rows:
            after = row.log_offset
            yield ServerSentEvent(
                data=JobEvent.from_row(row).model_dump_json(), event=row.type, id=str(after)
            )
        if status is None or status in domain.TERMINAL_STATUSES:
            return
        await asyncio.sleep(STREAM_POLL_SECONDS)


def progress(job_id: uuid.UUID, after: int, conn: Connection) -> tuple[str | None, list[Any]]:
    """The job's status, then its events after offset ``after`` (one ``Reads.run`` work).

    Status first: every event projected before a terminal status is then among the
    events, so a stream that stops at that status has sent them all.
    """
    return jobs.status(conn, job_id), jobs.events(conn, job_id, after)
