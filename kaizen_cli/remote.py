"""What every command that talks to a running API shares: the connection, the error policy, output.

The connection comes from ``--url`` / ``KAIZEN_URL`` (default ``http://127.0.0.1:8000``)
and ``--api-key`` / ``KAIZEN_API_KEY`` (default: the first key ``kaizen up`` stored in
``<KAIZEN_HOME>/first-key.txt``). Requests go through the ``kaizen-client`` SDK.

Errors never show a traceback: an API problem prints its title and detail and exits 1,
an unreachable server exits 3 (see ``docs/cli.md`` for every exit code).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from kaizen_client import ApiError, Kaizen, KaizenError, TransportError
from kaizen_client import models as m
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

DEFAULT_URL = "http://127.0.0.1:8000"

#: Exit codes shared by every HTTP command (``jobs watch`` adds the job's own, see jobs_cmd).
EXIT_REFUSED = 1  # the API answered with a problem, or the input was refused
EXIT_UNREACHABLE = 3  # no answer: the server is down, unreachable, or the connection broke
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

# soft_wrap: a message is one line however narrow the terminal (or 80 columns when piped),
# so scripts and grep see it whole; tables still fit the width.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Url = Annotated[
    str | None,
    typer.Option("--url", envvar="KAIZEN_URL", show_envvar=True, help=f"The API (default {DEFAULT_URL})."),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="KAIZEN_API_KEY",
        show_envvar=True,
        help="An API key (default: the one `kaizen up` stored in KAIZEN_HOME/first-key.txt).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]
TaskRef = Annotated[str, typer.Argument(help="The task's id or name.", show_default=False)]


def api_url(url: str | None = None) -> str:
    return (url or os.environ.get("KAIZEN_URL") or DEFAULT_URL).rstrip("/")


def api_key(key: str | None = None) -> str | None:
    """The key given, else ``KAIZEN_API_KEY``, else the first key ``kaizen up`` stored."""
    if key and key.strip():
        return key.strip()
    if env := os.environ.get("KAIZEN_API_KEY", "").strip():
        return env
    stored = Path(os.environ.get("KAIZEN_HOME", ".kaizen")) / "first-key.txt"
    if not stored.is_file():
        return None
    return stored.read_text().strip() or None


@contextmanager
def connect(url: str | None, key: str | None, *, timeout: float = 60.0) -> Iterator[Kaizen]:
    """A client for one command; every SDK error inside becomes a plain message and an exit code."""
    base = api_url(url)
    with reported(base):
        # exit_timeout=0: a command never uses the buffered feedback() sender, so nothing waits at exit.
        client = Kaizen(base, api_key(key), timeout=timeout, exit_timeout=0)
        try:
            yield client
        finally:
            client.close(timeout=0)


@contextmanager
def reported(base: str) -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        show_problem(exc)
        raise typer.Exit(EXIT_REFUSED) from None
    except TransportError as exc:
        err.print(f"[red]Cannot reach the Kaizen API at {escape(base)}[/] ({escape(_cause(exc))}).")
        err.print("Start it with `kaizen up`, or point --url / KAIZEN_URL at it.")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    except KaizenError as exc:
        err.print(f"[red]Error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    except KeyboardInterrupt:
        err.print("Interrupted.")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def show_problem(exc: ApiError) -> None:
    """An RFC 7807 problem in plain words: title, detail, the fields that broke a rule."""
    title = exc.title or "Error"
    detail = exc.detail if exc.detail and exc.detail != title else ""
    err.print(f"[red]{escape(title)}[/] ({exc.status}){': ' + escape(detail) if detail else ''}")
    for error in exc.errors:
        field = getattr(error, "field", None) or (error.get("field") if isinstance(error, dict) else None)
        message = getattr(error, "message", None) or (
            error.get("message") if isinstance(error, dict) else str(error)
        )
        if field and message and message not in detail:
            err.print(f"  {escape(str(field))}: {escape(str(message))}")
    if exc.status == 401:
        err.print("Pass a key with --api-key or KAIZEN_API_KEY (`kaizen up` stores the first one).")
    elif exc.status == 403:
        err.print("This needs a key with a stronger role (admin for keys and optimize).")


def _cause(exc: TransportError) -> str:
    cause = exc.__cause__
    return type(cause).__name__ if cause is not None else str(exc)


def resolve_task(client: Kaizen, ref: str) -> m.TaskResponse:
    """The task with id ``ref``, else the one named ``ref`` (names are unique)."""
    try:
        task_id = uuid.UUID(ref)
    except ValueError:
        task_id = None
    if task_id is not None:
        return client.tasks.get(task_id)
    wanted = ref.strip().casefold()
    for task in client.tasks.iter():
        if task.name.strip().casefold() == wanted:
            return task
    raise KaizenError(f"no task has the id or name {ref!r} (`kaizen tasks list` shows them)")


def resolve_task_id(client: Kaizen, ref: str) -> uuid.UUID:
    """``ref`` itself when it is an id (no request), else the id of the task named ``ref``."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return resolve_task(client, ref).id


def print_json(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    """Plain JSON on stdout (never rich: no colour, no wrapping), one document."""
    sys.stdout.write(json.dumps(jsonable(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def when(value: Any) -> str:
    """A timestamp as people read it (seconds, no microseconds); empty for none."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def score(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
