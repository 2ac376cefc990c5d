"""``kaizen webhooks create|list|deliveries|delete``: subscriptions of HTTP receivers to job events.

Over HTTP with an admin key, like the other client commands (``kaizen_cli.remote``).
``create`` prints the signing secret once, alone on stdout; see ``docs/webhooks.md``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kaizen_cli import remote
from kaizen_cli.remote import ApiKey, Json, Url, connect, out, print_json, when

webhooks_app = typer.Typer(
    help="Webhooks: deliver job events to an HTTP receiver (admin key).", no_args_is_help=True
)

WebhookRef = Annotated[str, typer.Argument(help="The subscription's id.", show_default=False)]
_OUTCOME_STYLE = {"delivered": "green", "retrying": "yellow", "dead": "red"}


@webhooks_app.command()
def create(
    target: Annotated[
        str, typer.Argument(help="The receiver's URL (its origin must be in KAIZEN_WEBHOOK_HOSTS).")
    ],
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only this event type (repeat for several); default: every job event."),
    ] = None,
    task: Annotated[str | None, typer.Option(help="Only this task's jobs (id or name).")] = None,
    url: Url = None,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Subscribe a receiver; print its signing secret once, alone on stdout (store it now)."""
    with connect(url, api_key) as client:
        task_id = remote.resolve_task_id(client, task) if task else None
        created = client.webhooks.create(target, types=type_ or None, task_id=task_id)
    if json_:
        print_json(created)
        return
    remote.err.print(f"Created webhook {created.id} → {escape(created.url)}; its secret, shown once:")
    print(created.secret)


@webhooks_app.command("list")
def list_webhooks(url: Url = None, api_key: ApiKey = None, json_: Json = False) -> None:
    """Every subscription: id, URL, filters (never the secret)."""
    with connect(url, api_key) as client:
        hooks = client.webhooks.list()
    if json_:
        print_json(hooks)
        return
    table = Table("id", "url", "types", "task", "created")
    for hook in hooks:
        types = ", ".join(hook.types) or "every job event"
        table.add_row(
            str(hook.id), escape(hook.url), types, str(hook.task_id or "every task"), when(hook.created_at)
        )
    out.print(table)


@webhooks_app.command()
def deliveries(
    webhook: WebhookRef,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many attempts, newest first.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Attempts to skip.")] = 0,
    url: Url = None,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """The subscription's delivery attempts, newest first: what was delivered, retried or dead."""
    with connect(url, api_key) as client:
        attempts = client.webhooks.deliveries(webhook, limit=limit, offset=offset)
    if json_:
        print_json(attempts)
        return
    table = Table("when", "event", "job", "attempt", "outcome", "status", "error")
    for a in attempts:
        style = _OUTCOME_STYLE[a.outcome]
        table.add_row(
            when(a.attempted_at),
            a.event_type,
            str(a.job_id or "-"),
            str(a.attempt),
            f"[{style}]{a.outcome}[/]",
            str(a.status_code or "-"),
            escape(a.error or ""),
        )
    out.print(table)


@webhooks_app.command()
def delete(webhook: WebhookRef, url: Url = None, api_key: ApiKey = None) -> None:
    """Delete a subscription: nothing more is delivered to it."""
    with connect(url, api_key) as client:
        client.webhooks.delete(webhook)
    remote.err.print(f"Deleted webhook {webhook}.")
