"""``kaizen feedback import FILE``: a JSONL or CSV file of scored outputs, through the batch endpoint.

Rows go in chunks to ``POST /api/v1/feedback/batch``, each with an ``Idempotency-Key``
derived from the file's content and the chunk's index (``feedback_file``): re-running an
interrupted import writes nothing twice, as long as it uses the same API key (the server
scopes keys to the API key). Refused rows are reported with their line numbers.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Annotated

import typer
from kaizen_client import Kaizen, NotYetVisible, RateLimited, TransportError, Unavailable
from kaizen_client import models as m
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from kaizen_cli import feedback_file as ff
from kaizen_cli.remote import (
    EXIT_REFUSED,
    ApiKey,
    Json,
    Url,
    connect,
    err,
    out,
    print_json,
    resolve_task,
)

feedback_app = typer.Typer(help="Import scored feedback from a file (over HTTP).", no_args_is_help=True)

#: Attempts per chunk when the answer says "try again" (503, 504, 429) or never came.
ATTEMPTS = 6
SHOWN_REFUSALS = 50


@feedback_app.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="A .jsonl or .csv file."),
    ],
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="Task id or name for rows without task_id.")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="source for rows without one: sdk, user_rating, auto_eval.")
    ] = None,
    chunk_size: Annotated[int, typer.Option(min=1, max=ff.MAX_CHUNK_ITEMS, help="Rows per request.")] = 500,
    url: Url = None,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Import FILE (JSONL or CSV) in chunks; re-running it never writes a row twice.

    Exit codes: 0 every row accepted · 1 some rows refused (the others are imported)

    3 the API could not be reached (run the same command again to finish)
    """
    try:
        fmt = ff.file_format(file.name)
    except ff.UnknownFormat as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    data = file.read_bytes()
    with connect(url, api_key) as client:
        task_id = str(resolve_task(client, task).id) if task else None
        try:
            rows, refused = ff.parse(data, fmt, task_id, source)
        except UnicodeDecodeError as exc:
            err.print(f"[red]{escape(str(file))} is not UTF-8 text:[/] {escape(str(exc))}")
            raise typer.Exit(EXIT_REFUSED) from None
        total = len(rows) + len(refused)
        chunks = ff.chunks(rows, data, task_id, source, chunk_size)
        accepted = 0
        try:
            with _progress(len(rows), quiet=json_) as progress:
                bar = progress.add_task(f"importing {file.name}", total=len(rows))
                for chunk in chunks:
                    result = _send(client, chunk)
                    accepted += result.accepted
                    refused += _refusals(chunk, result)
                    progress.advance(bar, len(chunk.rows))
        except TransportError:
            _interrupted(accepted)
            raise
    refused.sort(key=lambda r: r.line)
    if json_:
        print_json(
            {
                "file": str(file),
                "rows": total,
                "accepted": accepted,
                "refused": [r.__dict__ for r in refused],
            }
        )
    else:
        _report(file, total, accepted, refused)
    if refused:
        raise typer.Exit(EXIT_REFUSED)


def _progress(total: int, *, quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet or total == 0,
    )


def _send(client: Kaizen, chunk: ff.Chunk) -> m.FeedbackBatchResult:
    """One chunk, retried with the same key while the server says nothing (or all) was written."""
    items = [row.item for row in chunk.rows]
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return client.send_feedback_batch(items, idempotency_key=chunk.key)
        except (Unavailable, NotYetVisible, RateLimited, TransportError) as exc:
            if attempt == ATTEMPTS:
                raise
            delay = _retry_after(exc) or min(8.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(30.0, float(value)) if value else None
    except ValueError:
        return None


def _refusals(chunk: ff.Chunk, result: m.FeedbackBatchResult) -> list[ff.Refusal]:
    refused = []
    for item in result.results:
        if item.id is None:
            problem = item.problem
            reason = problem.detail if problem is not None else f"refused ({item.status})"
            refused.append(ff.Refusal(chunk.rows[item.index].line, reason, item.status))
    return refused


def _interrupted(accepted: int) -> None:
    err.print(f"[yellow]Import interrupted after {accepted} accepted rows.[/]")
    err.print(
        "Run the same command again (same file, options and API key) to finish it: "
        "the rows already imported are not written twice."
    )


def _report(file: Path, total: int, accepted: int, refused: list[ff.Refusal]) -> None:
    colour = "green" if not refused else "yellow"
    out.print(f"[{colour}]{escape(file.name)}: {total} rows, {accepted} accepted, {len(refused)} refused.[/]")
    if not refused:
        return
    table = Table("line", "why it was refused", title="refused rows")
    for refusal in refused[:SHOWN_REFUSALS]:
        table.add_row(str(refusal.line), escape(refusal.reason))
    out.print(table)
    if len(refused) > SHOWN_REFUSALS:
        out.print(f"… and {len(refused) - SHOWN_REFUSALS} more (--json lists them all).")
