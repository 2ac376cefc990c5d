"""``kaizen tasks list|show|create``: the tasks of a running API, as tables or JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from kaizen_client import models as m
from rich.markup import escape
from rich.table import Table

from kaizen_cli.remote import ApiKey, Json, TaskRef, Url, connect, out, print_json, resolve_task, score, when

tasks_app = typer.Typer(help="List, show and create tasks (over HTTP).", no_args_is_help=True)


@tasks_app.command("list")
def list_tasks(url: Url = None, api_key: ApiKey = None, json_: Json = False) -> None:
    """Every task, with its feedback, threshold progress and last job."""
    with connect(url, api_key) as client:
        tasks = list(client.tasks.iter())
    if json_:
        print_json(tasks)
        return
    if not tasks:
        out.print("No tasks yet: create one with `kaizen tasks create NAME`.")
        return
    table = Table("id", "name", "feedback", "threshold", "mode", "last job", "active score")
    for task in tasks:
        progress = task.threshold_progress
        last = task.last_optimization
        table.add_row(
            str(task.id),
            escape(task.name),
            str(task.feedback_count),
            f"{progress.feedback_since_last_job}/{progress.threshold}",
            task.mode,
            f"{last.status} {when(last.created_at)}" if last else "",
            score(task.active_prompt_score),
        )
    out.print(table)


@tasks_app.command()
def show(task: TaskRef, url: Url = None, api_key: ApiKey = None, json_: Json = False) -> None:
    """One task's settings and state."""
    with connect(url, api_key) as client:
        found = resolve_task(client, task)
    if json_:
        print_json(found)
        return
    out.print(task_table(found))


def task_table(task: m.TaskResponse) -> Table:
    table = Table("field", "value", show_header=False, title=f"task {escape(task.name)}")
    last = task.last_optimization
    rows: list[tuple[str, Any]] = [
        ("id", task.id),
        ("description", task.description),
        ("input fields", _schema(task.input_schema)),
        ("feedback", task.feedback_count),
        (
            "next job after",
            f"{task.threshold_progress.feedback_since_last_job}/{task.threshold_progress.threshold} feedback",
        ),
        ("mode", task.mode),
        ("optimizer", f"{task.optimizer} ({task.module_type})"),
        ("teacher model", task.teacher_model or "(server default)"),
        ("judge model", task.judge_model or "(server default)"),
        ("cost budget", f"${task.cost_budget:.2f}" if task.cost_budget is not None else "none"),
        ("evaluator", json.dumps(task.evaluator_config) if task.evaluator_config else "(defaults)"),
        ("prompt", f"{task.prompt_format}, {task.prompt_contract} contract"),
        ("git", _git(task)),
        ("active prompt score", score(task.active_prompt_score)),
        ("last job", f"{last.id} {last.status} {when(last.created_at)}" if last else "none"),
        ("created", when(task.created_at)),
        ("updated", when(task.updated_at)),
    ]
    for name, value in rows:
        table.add_row(name, escape("" if value is None else str(value)))
    return table


def _schema(schema: list[str] | dict[str, Any] | None) -> str:
    if schema is None:
        return "(any)"
    if isinstance(schema, list):
        return ", ".join(schema)
    return json.dumps(schema)


def _git(task: m.TaskResponse) -> str:
    if task.git_provider is None:
        return "not configured"
    where = f"{task.git_provider} {task.git_repo or '?'}@{task.git_base_branch or 'default branch'}"
    return (
        f"{where}, {task.prompt_path or 'no prompt path'}, token {'set' if task.git_token_set else 'unset'}"
    )


@tasks_app.command()
def create(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. route-tickets.", show_default=False)],
    field: Annotated[
        list[str] | None,
        typer.Option("--field", "-f", help="An input field of the task (repeat: -f ticket -f customer)."),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the task does.")] = None,
    threshold: Annotated[
        int | None, typer.Option(min=1, help="Live feedback that triggers a job [server default: 50].")
    ] = None,
    teacher_model: Annotated[str | None, typer.Option(help="LiteLLM model string of the teacher.")] = None,
    judge_model: Annotated[str | None, typer.Option(help="LiteLLM model string of the judge.")] = None,
    cost_budget: Annotated[float | None, typer.Option(min=0, help="USD a job may spend.")] = None,
    evaluator: Annotated[
        str | None, typer.Option(help='evaluator_config as JSON, e.g. \'{"metric": "exact_match"}\'.')
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Create a task. Git and prompt-file settings are set over the API or the SDK (tasks.update)."""
    settings: dict[str, Any] = {
        "schema_json": field or None,
        "description": description,
        "feedback_threshold": threshold,
        "teacher_model": teacher_model,
        "judge_model": judge_model,
        "cost_budget": cost_budget,
        "evaluator_config": _json_object("--evaluator", evaluator),
    }
    with connect(url, api_key) as client:
        task = client.tasks.create(name, **{k: v for k, v in settings.items() if v is not None})
    if json_:
        print_json(task)
        return
    out.print(f"Created task [bold]{escape(task.name)}[/] ({task.id}).")
    out.print(
        f"Send feedback to it, or import a file: kaizen feedback import FILE --task {escape(task.name)}"
    )


def _json_object(option: str, text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=option) from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=option)
    return value
