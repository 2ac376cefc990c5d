"""``kaizen kafka start|stop|status``: the local development broker, or a check of an external cluster.

With ``KAIZEN_KAFKA_BOOTSTRAP`` set, Kaizen uses that cluster and runs no broker of its
own: ``start`` only waits until the cluster is ready, ``stop`` has nothing to do.
``start --secure`` (SASL_SSL with SCRAM and a generated CA) and ``start --brokers 3`` (a
replicated local cluster) always start local brokers, and print the ``KAIZEN_*`` lines
that point services at them (kept in ``client.env`` beside their data).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kaizen_cli.kafka_cluster import LocalKafkaCluster, cluster_ports
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


Secure = Annotated[
    bool,
    typer.Option(
        "--secure",
        help="A SASL_SSL listener with SCRAM-SHA-512 and a generated CA (under <home>/kafka-secure); "
        "prints the KAIZEN_KAFKA_* settings services need.",
    ),
]
Brokers = Annotated[
    int,
    typer.Option(
        min=1,
        max=5,
        help="Nodes of a local cluster (under <home>/kafka-cluster): with 3, every topic has 3 "
        "replicas and min.insync.replicas=2. Ports: KAIZEN_KAFKA_PORT and every second one above.",
    ),
]


@kafka_app.command()
def start(timeout: Timeout = 90, secure: Secure = False, brokers: Brokers = 1) -> None:
    """Start the local broker and wait until it is ready (fetching its jars the first time)."""
    settings = get_settings()
    if secure and brokers > 1:
        err.print("[red]error:[/] --secure runs a single broker; it cannot be combined with --brokers yet.")
        raise typer.Exit(2)
    if secure:
        _start_secure(settings, timeout)
        return
    if brokers > 1:
        _start_cluster(settings, timeout, brokers)
        return
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


def _start_secure(settings: Settings, timeout: float) -> None:
    kafka = _local(settings, secure=True)
    with _failures_exit():
        _fetch_jars_once(kafka)
        with _progress(f"Starting Kafka (SASL_SSL) at {kafka.bootstrap}"), _quiet_client_logs():
            bootstrap = kafka.start(timeout)
    assert kafka.secure is not None
    headline = f"Secure Kafka runs at [bold]{bootstrap}[/]"
    _print_client_env(kafka.root, kafka.secure.client_env(bootstrap), headline)
    out.print(
        "  Anyone on this machine who can read the password file can connect; "
        "the controller port stays plaintext on 127.0.0.1."
    )


def _start_cluster(settings: Settings, timeout: float, brokers: int) -> None:
    with _failures_exit():
        cluster = LocalKafkaCluster(
            settings.home,
            cluster_ports(settings.kafka_port, settings.kafka_controller_port, brokers),
            settings.kafka_heap,
        )
        _fetch_jars_once(cluster.nodes[0])
        with _progress(f"Starting {brokers} Kafka nodes at {cluster.bootstrap}"), _quiet_client_logs():
            cluster.start(max(timeout, 120))
    pids = ", ".join(str(state["pid"]) for state in cluster.status())
    headline = f"A Kafka cluster of {brokers} nodes runs (pids {pids})"
    _print_client_env(cluster.root, cluster.client_env(), headline)


def _fetch_jars_once(kafka: LocalKafka) -> None:
    if not kafka.status()["running"] and not kafka.jars_ready():
        with _progress("Fetching the Kafka jars from Maven Central (once, about 50 MB)"):
            kafka.ensure_jars()


def _print_client_env(root: Path, env: str, headline: str) -> None:
    path = root / "client.env"
    path.write_text(env)
    out.print(f"{headline}. Services connect with (also in {escape(str(path))}):\n")
    print(env, end="")  # plain, so it can be pasted or sourced as it is
    out.print(f"\n  e.g. set -a; . {escape(str(path))}; set +a; kaizen up")


@kafka_app.command()
def stop(timeout: Timeout = 30) -> None:
    """Stop the local broker (SIGTERM, then SIGKILL after the timeout). Its data is kept.

    Also stops the secure broker and the local cluster of this home, if they run.
    """
    settings = get_settings()
    if _stop_variants(settings, timeout):
        return
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
    with _failures_exit():
        secure = _local(settings, secure=True).status()
        if secure["running"]:
            where = f"(pid {secure['pid']}) at {secure['bootstrap']}"
            out.print(f"Secure Kafka (SASL_SSL): [green]running[/] {where}")
        for cluster in _clusters(settings):
            out.print(f"Kafka cluster: {escape(str(cluster.root))}")
            for node in cluster.status():
                running = f"[green]running[/] (pid {node['pid']})" if node["running"] else "[red]down[/]"
                out.print(f"  {node['bootstrap']}: {running}")


def _local(settings: Settings, *, secure: bool = False) -> LocalKafka:
    return LocalKafka(
        settings.home, settings.kafka_port, settings.kafka_controller_port, settings.kafka_heap, secure=secure
    )


def _stop_variants(settings: Settings, timeout: float) -> bool:
    """Stop the secure broker and the local cluster of this home; whether one of them ran."""
    stopped = False
    with _failures_exit():
        secure = _local(settings, secure=True)
        if (pid := secure.status()["pid"]) is not None:
            with _progress("Stopping the secure Kafka"):
                secure.stop(timeout)
            out.print(f"Stopped the secure Kafka (pid {pid}).")
            stopped = True
        for cluster in _clusters(settings):
            with _progress("Stopping the Kafka cluster"):
                cluster.stop(timeout)
            out.print(f"Stopped the {len(cluster.nodes)}-node Kafka cluster.")
            stopped = True
    return stopped


def _clusters(settings: Settings) -> list[LocalKafkaCluster]:
    """The local cluster of this home if one of its nodes runs (its size read from the disk)."""
    root = settings.home.expanduser().resolve() / "kafka-cluster"
    size = len(list(root.glob("node-*/config/server.properties")))
    if size < 2:
        return []
    cluster = LocalKafkaCluster(
        settings.home, cluster_ports(settings.kafka_port, settings.kafka_controller_port, size)
    )
    return [cluster] if any(state["running"] for state in cluster.status()) else []


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
