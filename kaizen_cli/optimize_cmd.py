"""``kaizen optimize TASK``: show what a job would cost, ask, then start it.

The estimate comes from ``GET /api/v1/optimize/{task_id}/estimate``, which starts
nothing, so the question is asked with the server's own figures in front of it (and
the budget warning, when the estimate exceeds the task's ``cost_budget``).
``POST /api/v1/optimize/{task_id}`` then creates the job and answers with the estimate
again; it is printed once more only if it changed in between (new feedback). A job that
costs more than expected is stopped with ``kaizen jobs cancel``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from kaizen_client import Kaizen
from kaizen_client import models as m
from rich.markup import escape
from rich.table import Table

from kaizen_cli.job_watch import EXIT_BY_STATUS, follow
from kaizen_cli.remote import ApiKey, Json, TaskRef, Url, connect, err, out, print_json, resolve_task

#: Exit code when confirmation is needed but there is no terminal to ask on (click's usage error).
EXIT_NEEDS_YES = 2


def optimize(
    task: TaskRef,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start without asking.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Then follow the job live (exit codes of `jobs watch`).")
    ] = False,
    url: Url = None,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Start an optimization job for TASK (id or name) now, after a confirmation (--yes skips it)."""
    if json_ and watch:
        raise typer.BadParameter("--watch shows a live view; use `kaizen jobs watch --json` after --json")
    with connect(url, api_key) as client:
        found = resolve_task(client, task)
        shown = None if yes else _confirm(client, found)
        started = client.optimize(found.id)
        if json_:
            print_json(started)
            return
        _show(found, started, shown)
        if not watch:
            out.print(f"Follow it with: kaizen jobs watch {started.job.id}")
            return
        job = follow(client, started.job.id, reconnect=30.0, live=True)
    raise typer.Exit(EXIT_BY_STATUS[job.status])


def _confirm(client: Kaizen, task: m.TaskResponse) -> m.OptimizeEstimate:
    """Show the plan and the server's estimate, and ask; returns the estimate shown."""
    if not sys.stdin.isatty():
        err.print(
            "[red]Refusing to start a job without confirmation:[/] stdin is not a terminal. "
            "Pass --yes to start it anyway."
        )
        raise typer.Exit(EXIT_NEEDS_YES)
    estimate = client.estimate(task.id)
    err.print(_plan(task))
    err.print(_estimate_table(estimate.cost_estimate))
    if estimate.budget_warning:
        err.print(f"[yellow]{escape(estimate.budget_warning)}[/]")
    if not typer.confirm(f"Start an optimization job for task {task.name!r}?", default=False, err=True):
        err.print("Nothing started.")
        raise typer.Exit(1)
    return estimate


def _plan(task: m.TaskResponse) -> Table:
    config = task.evaluator_config
    run = ", ".join(f"{k}={json.dumps(config[k])}" for k in ("auto", "max_trials", "metric") if k in config)
    table = Table(
        "", "", show_header=False, box=None, title=f"optimize {escape(task.name)}", title_justify="left"
    )
    table.add_row("task", f"{escape(task.name)} ({task.id})")
    table.add_row("feedback", str(task.feedback_count))
    table.add_row("teacher model", escape(task.teacher_model or "(server default)"))
    table.add_row("judge model", escape(task.judge_model or "(server default)"))
    table.add_row("run", escape(run or "defaults (auto=light)"))
    budget = f"${task.cost_budget:.2f}" if task.cost_budget is not None else "none"
    table.add_row("cost budget", budget)
    return table


def _estimate_table(estimate: m.CostEstimateOut) -> Table:
    table = Table("", "", show_header=False, title="cost estimate", title_justify="left")
    table.add_row("estimated cost", f"${estimate.estimated_cost_usd:.4f}")
    table.add_row("LLM calls", f"≈ {estimate.estimated_llm_calls}")
    table.add_row("examples", f"{estimate.train_size} train, {estimate.val_size} validation")
    table.add_row("trials", f"up to {estimate.max_trials}")
    table.add_row(
        "models",
        escape(f"task {estimate.task_model}, teacher {estimate.teacher_model}, judge {estimate.judge_model}"),
    )
    if estimate.unpriced_models:
        table.add_row("not priced", escape(", ".join(estimate.unpriced_models)))
    return table


def _show(task: m.TaskResponse, started: m.OptimizeResponse, shown: m.OptimizeEstimate | None) -> None:
    out.print(f"Started job [bold]{started.job.id}[/] for task {escape(task.name)} ({started.job.status}).")
    if shown is None or shown.cost_estimate != started.cost_estimate:
        out.print(_estimate_table(started.cost_estimate))
    if started.budget_warning:
        out.print(f"[yellow]{escape(started.budget_warning)}[/]")
        out.print(f"Stop it with: kaizen jobs cancel {started.job.id}")
