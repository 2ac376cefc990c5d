"""``kaizen up``'s process supervisor: start each service as its own process, restart one
that dies, and stop them all (SIGTERM, then SIGKILL) on Ctrl-C or SIGTERM.

Restarts are scheduled, never slept through: a unit that dies gets a deadline (1, 2, 5,
10, 30 s after its death, growing while it keeps dying), and the watch loop goes on
checking every other unit meanwhile. So two services that die together come back
together, and a service stuck in a 30 s backoff never delays another one's restart.

The local broker is watched too: its JVM runs detached (its own session, so Ctrl-C in
the terminal does not reach it), so it is watched by pid, and restarted on the same data
dir in a thread, because a broker start waits for readiness.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kaizen_cli.kafka_local import LocalKafka, LocalKafkaError

log = logging.getLogger(__name__)

RESTART_DELAYS: tuple[float, ...] = (1, 2, 5, 10, 30)
#: A unit that ran this long before dying starts a fresh series of delays. A crash loop dies
#: while starting (bad settings, nothing to connect to), within seconds; a service killed
#: after it had been up and serving (OOM killer, an operator, the chaos tier) must come back
#: at once, not after a delay grown by earlier, unrelated deaths.
STABLE_SECONDS = 15.0
TICK_SECONDS = 0.2


class Unit(Protocol):
    """Something the supervisor keeps running."""

    name: str
    restarts: int
    started_at: float
    restart_at: float | None

    def exit_reason(self) -> str | None:
        """Why it is not running (``None`` while it runs or starts)."""

    def start(self, env: dict[str, str]) -> None: ...

    @property
    def log_path(self) -> Path: ...


@dataclass
class Child:
    """A service process started by us (``Popen``), so its exit is seen with ``poll``."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    restart_at: float | None = None

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.started_at = time.monotonic()

    def exit_reason(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        return f"exited with code {self.process.returncode}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


@dataclass
class Broker:
    """The local broker's JVM: watched by pid, restarted (same data dir) in a thread."""

    kafka: LocalKafka
    name: str = "kafka"
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None
    pid: int | None = None
    _starting: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.pid = self.kafka.status()["pid"]

    @property
    def log_path(self) -> Path:
        return self.kafka.server_log

    def exit_reason(self) -> str | None:
        if self._starting is not None and self._starting.is_alive():
            return None
        if self.pid is not None and self.kafka.pid_running(self.pid):
            return None
        code = self.kafka.collect(self.pid) if self.pid is not None else None
        self.pid = None
        return f"exited with code {code}" if code is not None else "is not running"

    def start(self, env: dict[str, str]) -> None:
        self.started_at = time.monotonic()
        self._starting = threading.Thread(target=self._start, name="kaizen-kafka-restart", daemon=True)
        self._starting.start()

    def _start(self) -> None:
        try:
            self.kafka.start()
        except LocalKafkaError as exc:
            # The next tick finds it not running and schedules another attempt.
            print(f"kaizen: restarting Kafka failed: {exc}", file=sys.stderr)
            return
        self.pid = self.kafka.status()["pid"]
        print(f"kaizen: Kafka is back at {self.kafka.bootstrap} (pid {self.pid})", file=sys.stderr)

    def join(self, timeout: float) -> None:
        """Wait for a restart under way (so that stopping the broker finds it)."""
        if self._starting is not None:
            self._starting.join(timeout)


def restart_delay(unit: Unit, now: float, delays: tuple[float, ...] = RESTART_DELAYS) -> float:
    """The delay before ``unit`` starts again; a unit that had run a while starts a fresh series."""
    if now - unit.started_at > STABLE_SECONDS:
        unit.restarts = 0
    return delays[min(unit.restarts, len(delays) - 1)]


@dataclass
class Supervisor:
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)
    broker: Broker | None = None
    delays: tuple[float, ...] = RESTART_DELAYS
    stopping: bool = False

    def add(self, name: str, module: str, log_dir: Path, *args: str) -> Child:
        return self.add_command(name, [sys.executable, "-m", module, *args], log_dir / f"{name}.log")

    def add_command(self, name: str, argv: list[str], log_path: Path) -> Child:
        child = Child(name, argv, log_path)
        self.children.append(child)
        child.start(self.env)
        return child

    def watch_broker(self, kafka: LocalKafka) -> Broker:
        """Watch a running local broker and restart it when its JVM dies."""
        self.broker = Broker(kafka)
        return self.broker

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def watch(self) -> None:
        """Block until asked to stop, restarting any unit that exits."""
        while not self.stopping:
            self.tick(time.monotonic())
            time.sleep(TICK_SECONDS)

    def units(self) -> list[Unit]:
        return [*self.children, *([self.broker] if self.broker is not None else [])]

    def tick(self, now: float) -> None:
        """One look at every unit: start those whose restart is due, schedule the newly dead."""
        for unit in self.units():
            if self.stopping:
                return
            if unit.restart_at is not None:
                if now >= unit.restart_at:
                    unit.restart_at = None
                    unit.restarts += 1
                    unit.start(self.env)
            elif (reason := unit.exit_reason()) is not None:
                self._schedule(unit, reason, now)

    def _schedule(self, unit: Unit, reason: str, now: float) -> None:
        delay = restart_delay(unit, now, self.delays)
        unit.restart_at = now + delay
        print(
            f"kaizen: {unit.name} {reason}; restarting in {delay:g} s (log: {unit.log_path})",
            file=sys.stderr,
        )

    def stop_all(self, grace: float = 20) -> None:
        """SIGTERM every child, wait up to ``grace`` seconds, SIGKILL what is left.

        The broker is left to its owner (``kaizen up`` stops it last); a restart of it
        under way is awaited first, so the broker it starts is not left behind.
        """
        self.stopping = True
        for child in reversed(self.children):
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"kaizen: {child.name} did not stop in {grace} s; killing it", file=sys.stderr)
                child.process.kill()
                child.process.wait()
        if self.broker is not None:
            self.broker.join(120)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return env
