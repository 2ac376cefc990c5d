"""``kaizen prompts push|pull``: the prompt file your application runs, to and from Kaizen.

``push`` registers the file as a version of the task (``source: "user"``): the baseline the
next job has to beat. ``pull`` prints the active prompt, byte for byte, for the application
(or a diff) to use. Both speak to a running API over HTTP: ``KAIZEN_URL`` (default
``http://127.0.0.1:8000``) with the key in ``KAIZEN_API_KEY`` (default: the first key
``kaizen up`` wrote to ``<KAIZEN_HOME>/first-key.txt``).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

prompts_app = typer.Typer(
    help="Register the prompt your application runs (push), or print the active one (pull).",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_SECONDS = 60.0

TaskId = Annotated[uuid.UUID, typer.Argument(help="The task's id.")]


@prompts_app.command()
def push(
    task_id: TaskId,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The prompt file.")
    ],
    activate: Annotated[
        bool, typer.Option("--activate/--no-activate", help="Make it the active prompt at once.")
    ] = True,
) -> None:
    """Register FILE as a version of the task, validated under the task's prompt contract."""
    try:
        # Bytes, not text mode: the version must be the file exactly, line endings included.
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        err.print(f"[red]{escape(str(file))} is not UTF-8 text:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    body = {"prompt_text": text, "activate": activate}
    version = _call("POST", f"/api/v1/prompts/{task_id}", json=body)
    out.print(
        f"Registered version {version['version_number']} ({version['id']}) of task {version['task_id']}: "
        f"{version['status']}, source {version['source']}."
    )


@prompts_app.command()
def pull(task_id: TaskId) -> None:
    """Print the task's active prompt text to stdout, exactly as stored."""
    version = _call("GET", f"/api/v1/prompts/{task_id}")
    sys.stdout.write(str(version["prompt_text"]))
    sys.stdout.flush()


def api_url() -> str:
    return os.environ.get("KAIZEN_URL", DEFAULT_URL).rstrip("/")


def api_key() -> str | None:
    """``KAIZEN_API_KEY``, else the first key ``kaizen up`` stored (``None`` when neither exists)."""
    if key := os.environ.get("KAIZEN_API_KEY", "").strip():
        return key
    stored = Path(os.environ.get("KAIZEN_HOME", ".kaizen")) / "first-key.txt"
    if not stored.is_file():
        return None
    return stored.read_text().strip() or None


def _call(method: str, path: str, json: Any = None) -> dict[str, Any]:
    """The JSON answer of a 2xx, or exit 1 with the problem's detail on stderr."""
    key = api_key()
    headers = {"X-API-Key": key} if key else {}
    url = api_url() + path
    try:
        response = httpx.request(method, url, json=json, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        err.print(f"[red]Cannot reach the Kaizen API at {escape(api_url())}:[/] {escape(str(exc))}")
        err.print("Start it with `kaizen up`, or set KAIZEN_URL.")
        raise typer.Exit(1) from None
    if response.is_success:
        answer: dict[str, Any] = response.json()
        return answer
    err.print(f"[red]{response.status_code}[/] {escape(_problem_text(response))}")
    if response.status_code == 401:
        err.print("Set KAIZEN_API_KEY to an API key (or run `kaizen up`, which stores the first one).")
    raise typer.Exit(1)


def _problem_text(response: httpx.Response) -> str:
    """An RFC 7807 problem's detail (a 422's lists every field error), or the start of the body."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict) and (problem.get("detail") or problem.get("title")):
        return str(problem.get("detail") or problem.get("title"))
    return response.text[:500]
