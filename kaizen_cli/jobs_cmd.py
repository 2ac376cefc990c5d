"""``kaizen jobs list|show|watch|retry-pr|cancel``: optimization jobs of a running API.

``watch`` follows a job live (its Server-Sent Events, polling when the stream cannot be
used) and exits with a code that tells how the job ended, so a script can branch on it.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer
from kaizen_client import models as m
from rich.markup import escape
from rich.table import Table

from kaizen_cli.job_watch import EXIT_BY_STATUS, follow
from kaizen_cli.remote import ApiKey, Json, Url, connect, out, print_json, resolve_task, when

jobs_app = typer.Typer(
    help="List, show, watch, cancel jobs and retry their PRs (over HTTP).", no_args_is_help=True
)

JobId = Annotated[uuid.UUID, typer.Argument(help="The job's id.", show_default=False)]


@jobs_app.command("list")
def list_jobs(
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="Only this task's jobs (id or name).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 20,
    url: Url = None,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """The newest jobs, of every task or of one."""
    with connect(url, api_key) as client:
        task_id = resolve_task(client, task).id if task else None
        jobs = client.jobs.list(task_id, limit=limit)
    if json_:
        print_json(jobs)
        return
    if not jobs:
        out.print("No jobs yet: start one with `kaizen optimize TASK`.")
        return
    table = Table("id", "task", "status", "step", "triggered by", "created", "pull request")
    for job in jobs:
        table.add_row(
            str(job.id),
            str(job.task_id),
            status_text(job.status),
            escape(job.progress_step or ""),
            job.triggered_by,
            when(job.created_at),
            escape(job.pr_url or ""),
        )
    out.print(table)


@jobs_app.command()
def show(job_id: JobId, url: Url = None, api_key: ApiKey = None, json_: Json = False) -> None:
    """One job: status, step, scores, cost, pull request, error."""
    with connect(url, api_key) as client:
        job = client.jobs.get(job_id)
    if json_:
        print_json(job)
        return
    out.print(job_table(job))


@jobs_app.command()
def watch(
    job_id: JobId,
    reconnect: Annotated[
        float, typer.Option(min=0, help="Seconds to keep trying when the API stops answering.")
    ] = 30.0,
    url: Url = None,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Follow a job live to its end: stage, trial n/N, best score so far.

    Exit codes: 0 SUCCESS · 4 FAILED (cancelled too) · 5 PR_FAILED

    3 the API did not answer for --reconnect seconds · 1 refused (e.g. no such job) · 130 Ctrl-C
    """
    with connect(url, api_key) as client:
        job = follow(client, job_id, reconnect=reconnect, live=not json_)
    if json_:
        print_json(job)
    raise typer.Exit(EXIT_BY_STATUS[job.status])


@jobs_app.command("retry-pr")
def retry_pr(job_id: JobId, url: Url = None, api_key: ApiKey = None, json_: Json = False) -> None:
    """Open the pull request of a PR_FAILED job again (the prompt is not re-optimized)."""
    with connect(url, api_key) as client:
        job = client.jobs.retry_pr(job_id)
    if json_:
        print_json(job)
        return
    out.print(f"Job {job.id} is {status_text(job.status)}; pull request: {escape(job.pr_url or 'none')}")


@jobs_app.command()
def cancel(job_id: JobId, url: Url = None, api_key: ApiKey = None, json_: Json = False) -> None:
    """Ask a running job to stop; it ends FAILED at its next safe point."""
    with connect(url, api_key) as client:
        job = client.jobs.cancel(job_id)
    if json_:
        print_json(job)
        return
    out.print(
        f"Cancellation of job {job.id} requested (now {status_text(job.status)}); "
        f"`kaizen jobs watch {job.id}` follows it to its end."
    )


STATUS_COLOURS = {"SUCCESS": "green", "FAILED": "red", "PR_FAILED": "red"}


def status_text(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "cyan")
    return f"[{colour}]{status}[/]"


def job_table(job: m.JobResponse) -> Table:
    meta = job.job_metadata
    table = Table("field", "value", show_header=False, title=f"job {job.id}")
    rows: list[tuple[str, Any]] = [
        ("task", job.task_id),
        ("status", status_text(job.status)),
        ("step", escape(job.progress_step or "")),
        ("triggered by", f"{job.triggered_by} ({job.feedback_count} feedback)"),
        ("created", when(job.created_at)),
        ("started", when(job.started_at)),
        ("completed", when(job.completed_at)),
    ]
    for name, key in (
        ("baseline score", "baseline_score"),
        ("optimized score", "optimized_score"),
        ("exported score", "export_score"),
        ("test score", "test_score"),
        ("trials", "trials_completed"),
        ("LLM calls", "llm_calls"),
        ("cost (USD)", "cost_usd"),
    ):
        if meta.get(key) is not None:
            rows.append((name, _number(meta[key])))
    if job.prompt_version_id:
        rows.append(("prompt version", job.prompt_version_id))
    if job.pr_url:
        rows.append(("pull request", escape(job.pr_url)))
    if job.error_message:
        rows.append(("error", f"[red]{escape(job.error_message)}[/]"))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else escape(json.dumps(value))
