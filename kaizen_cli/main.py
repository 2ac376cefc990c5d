"""The ``kaizen`` command: run the system (``up``, ``serve``, ``kafka``, ``replay``) and, over
HTTP, use a running one (``tasks``, ``feedback``, ``optimize``, ``jobs``, ``prompts``, ``keys``)."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from kaizen_cli.fake_git.demo import dev_app
from kaizen_cli.feedback_cmd import feedback_app
from kaizen_cli.jobs_cmd import jobs_app
from kaizen_cli.kafka_cmd import kafka_app
from kaizen_cli.keys_cmd import keys_app
from kaizen_cli.optimize_cmd import optimize
from kaizen_cli.prompts_cmd import prompts_app
from kaizen_cli.tasks_cmd import tasks_app
from kaizen_cli.webhooks_cmd import webhooks_app
from shared.settings import Settings, get_settings

app = typer.Typer(
    help="Kaizen: better prompts from scored feedback, delivered as pull requests.", no_args_is_help=True
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(keys_app, name="keys")
app.add_typer(tasks_app, name="tasks")
app.add_typer(feedback_app, name="feedback")
app.add_typer(jobs_app, name="jobs")
app.add_typer(prompts_app, name="prompts")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(dev_app, name="dev")
err = Console(stderr=True)
out = Console()

SERVICES = {
    "api": "services.api",
    "optimizer": "services.optimizer",
    "pr-publisher": "services.pr_publisher",
    "projector": "services.projector",
    "webhooks": "services.webhooks",
}


def load_settings() -> Settings:
    """Validated settings, or exit with one line per bad ``KAIZEN_*`` variable."""
    try:
        return get_settings()
    except ValidationError as exc:
        err.print("[red]Invalid configuration:[/]")
        for error in exc.errors():
            name = "KAIZEN_" + "_".join(str(p) for p in error["loc"]).upper()
            err.print(f"  {name}: {error['msg']}")
        raise typer.Exit(2) from None


@app.command()
def up() -> None:
    """Run everything on this machine: Kafka (unless KAIZEN_KAFKA_BOOTSTRAP), the embedded LLM
    (unless KAIZEN_LLM_API_BASE), the five services; print the API URL and the first API key."""
    from kaizen_cli.up import run_up

    raise typer.Exit(run_up(load_settings()))


@app.command()
def serve(
    service: Annotated[
        str, typer.Argument(help="api | optimizer | pr-publisher | projector | webhooks | llm")
    ],
) -> None:
    """Run one service in the foreground (what `kaizen up` starts, one process each)."""
    settings = load_settings()
    if service == "llm":
        from shared.llm.embedded import serve_forever

        serve_forever(settings.llm_port)
        return
    if service not in SERVICES:
        err.print(f"unknown service {service!r}; choose one of: {', '.join([*SERVICES, 'llm'])}")
        raise typer.Exit(2)
    module = importlib.import_module(f"{SERVICES[service]}.__main__")
    sys.argv = [sys.argv[0]]
    if service == "api":
        module.main()
    else:
        asyncio.run(module.main())


@app.command()
def replay(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Rebuild and compare; change nothing.")] = False,
    force: Annotated[bool, typer.Option(help="Swap even if a projector seems to be running.")] = False,
) -> None:
    """Rebuild the read model from the start of the log into a fresh database, compare it
    with the live one, and (unless --dry-run) swap it in."""
    from kaizen_cli.replay import run_replay

    raise typer.Exit(asyncio.run(run_replay(load_settings(), dry_run=dry_run, force=force)))


@app.command()
def schemas(
    directory: Annotated[Path, typer.Option(help="Where to write the JSON Schemas.")] = Path("docs/events"),
) -> None:
    """Write the JSON Schema of every event type (and an index) from the models."""
    from shared.events.schemas import write_all

    written = write_all(directory)
    out.print(f"wrote {len(written)} files to {directory}")


app.command("optimize")(optimize)  # listed after the commands that run the system

if __name__ == "__main__":
    app()
