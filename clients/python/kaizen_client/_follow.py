"""Following a job, the part both clients share: reading SSE lines as events, and ``wait``'s state.

Each client keeps only its loop (``for`` or ``async for``, ``time.sleep`` or
``asyncio.sleep``); what the loop decides from (the deadline, the last event's offset,
the progress already reported, whether the stream still works) lives here once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx

from kaizen_client import models as m
from kaizen_client._wire import SseParser
from kaizen_client.errors import ApiError, TransportError

ProgressCallback = Callable[[m.JobResponse], None]
EventCallback = Callable[[m.JobEvent], None]

#: Stream failures after which ``wait`` polls instead: a proxy that buffers, a broken
#: connection, a line that is no event. (A ``NotFound`` is re-raised before these.)
STREAM_FAILURES = (ApiError, TransportError, httpx.HTTPError, ValueError)


def stream_timeout(timeout: httpx.Timeout) -> httpx.Timeout:
    """The client's connect timeout, and a minute for each line (the server sends keep-alives)."""
    return httpx.Timeout(timeout.connect, read=60.0)


class EventReader:
    """The job events in an SSE stream, fed one line at a time."""

    def __init__(self) -> None:
        self._parser = SseParser()

    def feed(self, line: str) -> m.JobEvent | None:
        event = self._parser.feed(line)
        if event is not None and event.data:
            return m.JobEvent.model_validate_json(event.data)
        return None


class Follow:
    """The state of one ``jobs.wait``: reports progress, events and the deadline."""

    def __init__(
        self,
        job_id: uuid.UUID | str,
        on_progress: ProgressCallback | None,
        on_event: EventCallback | None,
        timeout: float | None,
    ) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.on_progress = on_progress
        self.on_event = on_event
        self.seen: tuple[str, str | None] | None = None
        #: The offset of the last event read, so a reconnected stream resumes after it.
        self.last: int | None = None
        #: ``False`` once the stream failed: ``wait`` polls from then on.
        self.streaming = True

    def checked(self, job: m.JobResponse) -> m.JobResponse:
        """``job``, after ``on_progress`` got it if its status or step changed."""
        if self.on_progress is not None and (job.status, job.progress_step) != self.seen:
            self.on_progress(job)
        self.seen = (job.status, job.progress_step)
        return job

    def event(self, event: m.JobEvent) -> None:
        self.last = event.offset
        if self.on_event is not None:
            self.on_event(event)

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def done(self, job: m.JobResponse) -> bool:
        """Whether to stop reading the stream: the job ended, or the deadline passed."""
        return job.terminal or self.expired()

    def check_deadline(self, job: m.JobResponse) -> None:
        if self.expired():
            raise TimeoutError(f"job {self.job_id} is still {job.status} after {self.timeout} s")
