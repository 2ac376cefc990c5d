"""Running jobs: at most ``concurrency`` at once, each in a killable worker subprocess.

Only the owner of a task's partition runs its jobs. A job found unfinished when a
partition is (re)assigned — its worker was killed — is resumed as a new attempt, and
ends FAILED ("worker lost") after ``MAX_ATTEMPTS``. Losing a partition to another member
kills its local jobs without a verdict: the new owner resumes them. (The new owner only
starts them once it has caught up with the partition, after the rebalance in which the
old owner stopped them.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.optimizer import events_out
from services.optimizer.adapters import StateStore
from services.optimizer.spec import JobFailed, JobFailure, JobSpec
from services.optimizer.subprocess_runner import run_in_subprocess
from shared import logcontext, metrics, tracing
from shared.kafka.producer import EventLog

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2

SpecBuilder = Callable[[Any, dict[str, Any], list[Any]], JobSpec]


@dataclass
class LocalJob:
    job_id: uuid.UUID
    partition: int
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class JobRunner:
    """Starts, cancels and recovers the jobs of the partitions this instance owns."""

    def __init__(
        self,
        store: StateStore,
        events: EventLog,
        build_spec: SpecBuilder,
        *,
        worker: str,
        concurrency: int,
        time_limit: float,
    ) -> None:
        self.store = store
        self.events = events
        self.build_spec = build_spec
        self.worker = worker
        self.time_limit = time_limit
        self.slots = asyncio.Semaphore(concurrency)
        self.local: dict[uuid.UUID, LocalJob] = {}
        # Jobs this process ran to a verdict: their final events may not be folded back
        # into the state yet, and they must not look unfinished meanwhile.
        self.concluded: set[uuid.UUID] = set()

    @property
    def active(self) -> int:
        return len(self.local)

    async def reconcile(self, partitions: set[int]) -> None:
        """Start every unfinished job of these (caught-up) partitions not running here."""
        for row in await self.store.unfinished_jobs(partitions):
            job_id = uuid.UUID(row.job_id)
            if job_id in self.local or job_id in self.concluded:
                continue
            if row.cancel_requested:
                await events_out.failed(
                    self.events, row, "cancelled by request before it ran", "cancelled", step="cancelled"
                )
            elif row.phase == "running" and row.attempts >= MAX_ATTEMPTS:
                message = f"worker lost: the job's worker stopped {row.attempts} times without finishing it"
                await events_out.failed(self.events, row, message, "worker_lost")
            else:
                self._start(row)

    def _start(self, row: Any) -> None:
        job = LocalJob(uuid.UUID(row.job_id), row.partition)
        self.local[job.job_id] = job
        job.task = asyncio.create_task(self._run(job, row), name=f"job-{job.job_id}")

    async def _run(self, job: LocalJob, row: Any) -> None:
        # Bound for the whole task: the worker's relayed stderr carries the job's ids too.
        with (
            logcontext.bound(job_id=job.job_id, task_id=row.task_id, correlation_id=row.correlation_id),
            tracing.resumed(job.job_id, "run job", **{"kaizen.task_id": str(row.task_id)}),
        ):
            try:
                await self._verdict(job, row)
                self.concluded.add(job.job_id)
            except asyncio.CancelledError:
                log.info("job %s stopped here (partition revoked or shutdown)", job.job_id)
                raise
            finally:
                self.local.pop(job.job_id, None)

    async def _verdict(self, job: LocalJob, row: Any) -> None:
        """Run the job to a verdict (result or failure events)."""
        try:
            async with self.slots:
                if job.cancel.is_set():
                    await events_out.failed(
                        self.events, row, "cancelled by request", "cancelled", step="cancelled"
                    )
                    return
                started = time.monotonic()
                await self._attempt(job, row)
                metrics.JOB_DURATION.observe(time.monotonic() - started)
        except Exception as exc:
            log.exception("job %s crashed in the runner", job.job_id)
            await events_out.failed(self.events, row, f"internal error in the optimizer: {exc!r}", "crashed")

    async def _attempt(self, job: LocalJob, row: Any) -> None:
        job_row, settings, examples = await self.store.job_inputs(job.job_id)
        try:
            spec = self.build_spec(job_row, settings, examples)
        except JobFailed as refused:  # before any LLM call: a refused model, a result too large
            failure = refused.failure
            await events_out.failed(self.events, job_row, failure.error_message, failure.kind)
            return
        attempt = row.attempts + 1
        log.info("job %s: attempt %d starts in a worker subprocess", job.job_id, attempt)
        progress = events_out.ProgressEmitter(self.events, job_row, spec, attempt)
        await events_out.started(self.events, job_row, spec, attempt, self.worker)
        try:
            result = await run_in_subprocess(spec, progress.on_progress, job.cancel, self.time_limit)
        except JobFailed as failed:
            await events_out.failed_with(self.events, job_row, failed.failure, progress)
            return
        await events_out.compiled(self.events, job_row, spec, result, progress, settings)

    def partitions(self) -> set[int]:
        """Partitions whose jobs run here now."""
        return {job.partition for job in self.local.values()}

    def cancel(self, job_ids: set[uuid.UUID]) -> None:
        for job_id in job_ids:
            if job_id in self.local:
                self.local[job_id].cancel.set()

    async def release(self, partitions: set[int]) -> None:
        """Stop local jobs of partitions we no longer own; their new owner resumes them."""
        doomed = [j for j in self.local.values() if j.partition in partitions and j.task is not None]
        for job in doomed:
            assert job.task is not None
            job.task.cancel()
        for job in doomed:
            assert job.task is not None
            with contextlib.suppress(asyncio.CancelledError):
                await job.task

    async def shutdown(self) -> None:
        await self.release({j.partition for j in self.local.values()})


__all__ = ["JobFailure", "JobRunner"]
