"""``kaizen up``: the whole system on one machine, supervised, stopped cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from aiokafka.errors import KafkaError
from rich.console import Console

from kaizen_cli import keys_cmd
from kaizen_cli.kafka_local import LocalKafka, LocalKafkaError
from kaizen_cli.supervisor import Supervisor, child_env
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import LogUnavailable
from shared.kafka.ready import wait_ready
from shared.settings import Settings

out = Console()
err = Console(stderr=True)

SERVICE_MODULES = {
    "projector": "services.projector",
    "optimizer": "services.optimizer",
    "pr-publisher": "services.pr_publisher",
    "webhooks": "services.webhooks",
    "api": "services.api",
}


def run_up(settings: Settings) -> int:
    home = settings.home.resolve()
    logs = home / "logs"
    kafka = (
        None
        if settings.kafka_bootstrap
        else LocalKafka(home, settings.kafka_port, settings.kafka_controller_port, settings.kafka_heap)
    )
    supervisor = Supervisor(child_env({"KAIZEN_HOME": str(home)}))
    supervisor.install_signal_handlers()
    try:
        bootstrap = _start_kafka(kafka, settings)
        if kafka is not None:
            supervisor.watch_broker(kafka)  # a broker whose JVM dies is restarted, services keep running
        asyncio.run(
            ensure_topics(
                bootstrap,
                Topics(settings.topic_prefix),
                partitions=settings.partitions,
                replication_factor=settings.replication_factor,
            )
        )
        if settings.llm_api_base is None:
            supervisor.add("llm", "kaizen_cli.main", logs, "serve", "llm")
            _wait_llm(settings, supervisor)
        for name, module in SERVICE_MODULES.items():
            if name == "api" and settings.api_processes > 1:
                for n in range(1, settings.api_processes + 1):
                    supervisor.add(f"api-{n}", module, logs)
            else:
                supervisor.add(name, module, logs)
        api = f"http://{settings.api_host}:{settings.api_port}"
        _wait_api(api, supervisor)
        key = _first_key(api, home, bootstrap, settings)
        out.print(f"\n[bold green]Kaizen is up.[/]  API: [bold]{api}[/]   docs: {api}/docs")
        out.print(
            f"First API key: [bold]{key}[/]"
            if key
            else f"API keys exist already; the first one is in {home / 'first-key.txt'}"
        )
        out.print(f"Logs: {logs}/   Stop: Ctrl-C\n")
        supervisor.watch()
        return 0
    except (LocalKafkaError, RuntimeError, TimeoutError) as exc:
        err.print(f"[red]kaizen up failed:[/] {exc}")
        return 1
    finally:
        out.print("Stopping…")
        supervisor.stop_all()
        if kafka is not None:
            kafka.stop()
        out.print("Stopped.")


def _start_kafka(kafka: LocalKafka | None, settings: Settings) -> str:
    if kafka is None:
        assert settings.kafka_bootstrap is not None
        with out.status(f"Waiting for Kafka at {settings.kafka_bootstrap}"):
            asyncio.run(wait_ready(settings.kafka_bootstrap, 60))
        return settings.kafka_bootstrap
    if not kafka.jars_ready():
        with out.status("Fetching the Kafka jars from Maven Central (once, about 50 MB)"):
            kafka.ensure_jars()
    with out.status(f"Starting Kafka at {kafka.bootstrap}"):
        return kafka.start()


def _wait_for(what: str, probe: object, supervisor: Supervisor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with out.status(f"Waiting for {what}"):
        while time.monotonic() < deadline:
            if supervisor.stopping:
                raise RuntimeError("interrupted")
            for child in supervisor.children:
                if child.process is not None and child.process.poll() is not None:
                    raise RuntimeError(f"{child.name} exited during start-up; see {child.log_path}")
            if probe():  # type: ignore[operator]
                return
            time.sleep(0.3)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f} s; see {supervisor.children[-1].log_path}")


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback URL we built)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _wait_llm(settings: Settings, supervisor: Supervisor) -> None:
    url = f"http://127.0.0.1:{settings.llm_port}/v1/models"
    _wait_for("the embedded LLM", lambda: _get(url) == 200, supervisor, 120)


def _wait_api(api: str, supervisor: Supervisor) -> None:
    _wait_for("the API", lambda: _get(f"{api}/health") in (200, 503), supervisor, 120)


def _first_key(api: str, home: Path, bootstrap: str, settings: Settings) -> str | None:
    """Create the first admin key through the log, as `kaizen keys bootstrap` does (only
    possible while no key exists); keep it in first-key.txt."""
    path = home / "first-key.txt"
    topics = Topics(settings.topic_prefix)
    try:
        key = asyncio.run(
            keys_cmd.bootstrap_first_key(
                bootstrap,
                topics,
                "first key",
                partitions=settings.partitions,
                replication_factor=settings.replication_factor,
            )
        )
    except keys_cmd.KeysExist:
        return path.read_text().strip() if path.exists() else None
    except (LogUnavailable, KafkaError) as exc:
        raise RuntimeError(f"bootstrapping the first API key failed: {exc}") from exc
    if not keys_cmd.wait_accepted(api, key, 30):
        raise RuntimeError("the API did not accept the first API key within 30 s")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return key
