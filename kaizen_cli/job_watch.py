"""Following one job to its end, shown live: what ``kaizen jobs watch`` and ``optimize --watch`` run.

The state shown is a fold of what the SDK's ``jobs.wait`` reports: the job itself (status,
step) on every change, and the raw events for what the job row does not carry live (the
trial count and the best score so far, the baseline).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from kaizen_client import Kaizen, KaizenError, TransportError
from kaizen_client import models as m
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kaizen_cli.remote import out

#: The exit code of ``jobs watch`` for each terminal status (3, 1 and 130 are taken: see remote).
EXIT_BY_STATUS = {"SUCCESS": 0, "FAILED": 4, "PR_FAILED": 5}
COLOURS = {"SUCCESS": "green", "FAILED": "red", "PR_FAILED": "red"}


@dataclass
class Watched:
    """What is known of the job so far."""

    job: m.JobResponse | None = None
    trial: int | None = None
    total_trials: int | None = None
    best_score: float | None = None
    baseline_score: float | None = None

    def on_job(self, job: m.JobResponse) -> None:
        self.job = job

    def on_event(self, event: m.JobEvent) -> None:
        data = event.data
        if event.type.startswith("kaizen.job.trial_completed."):
            self.trial = int(data["trial"])
            self.total_trials = data.get("total_trials")
            self.best_score = float(data["best_score"])
        elif event.type.startswith("kaizen.job.compiling."):
            self.baseline_score = float(data["baseline_score"])

    def line(self) -> str:
        """One plain line of the state, for output that is not a terminal."""
        job = self.job
        parts = [job.status if job else "?", job.progress_step or "" if job else ""]
        if self.trial is not None:
            parts.append(f"trial {self.trial}/{self.total_trials or '?'}")
        if self.best_score is not None:
            parts.append(f"best {self.best_score:.3f}")
        return "  ".join(p for p in parts if p)


def render(state: Watched, job_id: uuid.UUID, started: float) -> RenderableType:
    job = state.job
    status = job.status if job else "…"
    table = Table.grid(padding=(0, 2))
    table.add_row("job", str(job_id))
    table.add_row("status", Text(status, style=COLOURS.get(status, "cyan bold")))
    table.add_row("stage", escape(job.progress_step or "") if job else "")
    trial = f"{state.trial}/{state.total_trials or '?'}" if state.trial is not None else "–"
    table.add_row("trial", trial)
    best = f"{state.best_score:.3f}" if state.best_score is not None else "–"
    if state.baseline_score is not None:
        best += f"  (baseline {state.baseline_score:.3f})"
    table.add_row("best score", best)
    table.add_row("elapsed", f"{time.monotonic() - started:.0f} s")
    parts: list[RenderableType] = [table]
    if job is not None and job.pr_url:
        parts.append(Text(f"pull request: {job.pr_url}"))
    if job is not None and job.error_message:
        parts.append(Text(f"error: {job.error_message}", style="red"))
    return Group(*parts)


def follow(client: Kaizen, job_id: uuid.UUID, *, reconnect: float, live: bool) -> m.JobResponse:
    """Follow the job to its terminal state; keep trying for ``reconnect`` s while the API is away.

    ``live``: a live view on a terminal, one line per change otherwise; nothing when False.
    """
    state = Watched()
    if not live:
        return _wait(client, job_id, state, reconnect)
    if not out.is_terminal:
        return _wait(client, job_id, state, reconnect, show=_line_printer(state))
    started = time.monotonic()
    with Live(get_renderable=lambda: render(state, job_id, started), console=out, refresh_per_second=4):
        return _wait(client, job_id, state, reconnect)


def _line_printer(state: Watched) -> Callable[[], None]:
    printed: list[str] = []

    def show() -> None:
        if not printed or printed[-1] != state.line():
            printed.append(state.line())
            out.print(state.line(), highlight=False)

    return show


def _wait(
    client: Kaizen,
    job_id: uuid.UUID,
    state: Watched,
    reconnect: float,
    show: Callable[[], None] = lambda: None,
) -> m.JobResponse:
    failing_since: float | None = None

    def on_job(job: m.JobResponse) -> None:
        nonlocal failing_since
        failing_since = None
        state.on_job(job)
        show()

    def on_event(event: m.JobEvent) -> None:
        nonlocal failing_since
        failing_since = None
        state.on_event(event)

    while True:
        try:
            job = client.jobs.wait(job_id, on_progress=on_job, on_event=on_event)
        except TransportError:
            now = time.monotonic()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since >= reconnect:
                raise
            time.sleep(1.0)
            continue
        state.on_job(job)
        if state.trial is None:  # the job had ended before the stream was opened: its history tells
            with contextlib.suppress(KaizenError):
                for event in client.jobs.events(job_id):
                    state.on_event(event)
        show()
        return job
