"""``kaizen prompts push|pull``: the prompt file your application runs, to and from Kaizen.

``push`` registers the file as a version of the task (``source: "user"``): the baseline the
next job has to beat. ``pull`` prints the active prompt, byte for byte, for the application
(or a diff) to use. Both speak to a running API over HTTP (``--url``/``KAIZEN_URL``,
``--api-key``/``KAIZEN_API_KEY``: see ``kaizen_cli.remote``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from kaizen_cli.remote import (
    EXIT_REFUSED,
    ApiKey,
    Json,
    TaskRef,
    Url,
    connect,
    err,
    out,
    print_json,
    resolve_task_id,
)

prompts_app = typer.Typer(
    help="Register the prompt your application runs (push), or print the active one (pull).",
    no_args_is_help=True,
)


@prompts_app.command()
def push(
    task: TaskRef,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The prompt file.")
    ],
    activate: Annotated[
        bool, typer.Option("--activate/--no-activate", help="Make it the active prompt at once.")
    ] = True,
    url: Url = None,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Register FILE as a version of TASK (id or name), validated under the task's prompt contract."""
    try:
        # Bytes, not text mode: the version must be the file exactly, line endings included.
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        err.print(f"[red]{escape(str(file))} is not UTF-8 text:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    with connect(url, api_key) as client:
        task_id = resolve_task_id(client, task)
        version = client.prompts.register(task_id, text, activate=activate)
    if json_:
        print_json(version)
        return
    out.print(
        f"Registered version {version.version_number} ({version.id}) of task {version.task_id}: "
        f"{version.status}, source {version.source}.",
        highlight=False,
    )


@prompts_app.command()
def pull(task: TaskRef, url: Url = None, api_key: ApiKey = None) -> None:
    """Print TASK's active prompt text to stdout, exactly as stored (`> file` keeps it byte for byte)."""
    with connect(url, api_key) as client:
        task_id = resolve_task_id(client, task)
        version = client.prompts.get(task_id)
    sys.stdout.write(version.prompt_text)
    sys.stdout.flush()
