"""``kaizen kafka start|stop|status``: the local development broker, or a check of an external cluster.

With ``KAIZEN_KAFKA_BOOTSTRAP`` set, Kaizen uses that cluster and runs no broker of its
own: ``start`` only waits until the cluster is ready, ``stop`` has nothing to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kaizen_cli.kafka_local import LocalKafka, LocalKafkaError
from shared.kafka.ready import KafkaNotReadyError, wait_ready
from shared.settings import Settings, get_settings

kafka_app = typer.Typer(
    help="Run the local Kafka broker, or check the cluster named by KAIZEN_KAFKA_BOOTSTRAP.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

Timeout = Annotated[float, typer.Option(min=1, help="Seconds to wait for the broker to be ready.")]


@kafka_app.command()
def start(timeout: Timeout = 90) -> None:
    """Start the local broker and wait until it is ready (fetching its jars the first time)."""
    settings = get_settings()
    if settings.kafka_bootstrap:
        _wait_external(settings.kafka_bootstrap, timeout)
        out.print(
            f"Kafka at {settings.kafka_bootstrap} is ready. KAIZEN_KAFKA_BOOTSTRAP is set, "
            "so no local broker was started."
        )
        return
    kafka = _local(settings)
    with _failures_exit():
        already = kafka.status()
        if not already["running"] and not kafka.jars_ready():
            with _progress("Fetching the Kafka jars from Maven Central (once, about 50 MB)"):
                kafka.ensure_jars()
        with _progress(f"Starting Kafka at {kafka.bootstrap}"), _quiet_client_logs():
            bootstrap = kafka.start(timeout)
    status = kafka.status()
    verb = "was already running" if already["running"] else "started"
    out.print(f"Kafka {verb} at [bold]{bootstrap}[/] (pid {status['pid']}).")
    out.print(f"  data: {escape(status['data_dir'])}\n  log:  {escape(status['log_path'])}")


@kafka_app.command()
def stop(timeout: Timeout = 30) -> None:
    """Stop the local broker (SIGTERM, then SIGKILL after the timeout). Its data is kept."""
    settings = get_settings()
    if settings.kafka_bootstrap:
        out.print(
            f"KAIZEN_KAFKA_BOOTSTRAP is set ({settings.kafka_bootstrap}): Kaizen runs no local "
            "broker, so there is nothing to stop."
        )
        return
    kafka = _local(settings)
    with _failures_exit():
        pid = kafka.status()["pid"]
        with _progress("Stopping Kafka"):
            stopped = kafka.stop(timeout)
    if stopped:
        out.print(f"Stopped Kafka (pid {pid}).")
    else:
        out.print(f"No local Kafka is running from {escape(str(kafka.root))}.")


@kafka_app.command()
def status() -> None:
    """Show whether the local broker runs, its address, data and log (or probe the external cluster)."""
    settings = get_settings()
    if settings.kafka_bootstrap:
        _probe_external(settings.kafka_bootstrap)
        return
    kafka = _local(settings)
    with _failures_exit():
        state = kafka.status()
    running = f"[green]running[/] (pid {state['pid']})" if state["running"] else "[yellow]not running[/]"
    out.print(f"Kafka: {running}")
    out.print(f"  bootstrap: {state['bootstrap']}")
    out.print(f"  data:      {escape(state['data_dir'])}\n  log:       {escape(state['log_path'])}")


def _local(settings: Settings) -> LocalKafka:
    return LocalKafka(settings.home, settings.kafka_port, settings.kafka_controller_port, settings.kafka_heap)


def _wait_external(bootstrap: str, timeout: float) -> None:
    with _failures_exit(), _progress(f"Waiting for Kafka at {bootstrap}"), _quiet_client_logs():
        asyncio.run(wait_ready(bootstrap, timeout))


def _probe_external(bootstrap: str) -> None:
    try:
        with _progress(f"Checking Kafka at {bootstrap}"), _quiet_client_logs():
            asyncio.run(wait_ready(bootstrap, 5))
    except KafkaNotReadyError as exc:
        out.print(f"External Kafka (KAIZEN_KAFKA_BOOTSTRAP): [red]not ready[/] — {escape(str(exc))}")
        return
    out.print(f"External Kafka (KAIZEN_KAFKA_BOOTSTRAP) at {bootstrap}: [green]ready[/]")


@contextmanager
def _failures_exit() -> Iterator[None]:
    """Turn the errors a person can act on into a message and exit code 1, not a traceback."""
    try:
        yield
    except (LocalKafkaError, KafkaNotReadyError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc


@contextmanager
def _progress(description: str) -> Iterator[None]:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        progress.add_task(description, total=None)
        yield


@contextmanager
def _quiet_client_logs() -> Iterator[None]:
    """Refused connections are expected while a broker boots; aiokafka logs each one as an error."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)
