"""``kaizen up``'s process supervisor: start each service as its own process, restart
one that dies, and stop them all (SIGTERM, then SIGKILL) on Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

RESTART_DELAYS = (1, 2, 5, 10, 30)


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


@dataclass
class Supervisor:
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def add(self, name: str, module: str, log_dir: Path, *args: str) -> Child:
        child = Child(name, [sys.executable, "-m", module, *args], log_dir / f"{name}.log")
        self.children.append(child)
        child.start(self.env)
        return child

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def watch(self, on_restart: object = None) -> None:
        """Block until asked to stop, restarting any child that exits."""
        while not self.stopping:
            for child in self.children:
                if child.process is not None and child.process.poll() is not None and not self.stopping:
                    self._restart(child)
            time.sleep(0.5)

    def _restart(self, child: Child) -> None:
        assert child.process is not None
        code = child.process.returncode
        # A child that ran a while before dying gets a fresh series of delays.
        if time.monotonic() - child.started_at > 60:
            child.restarts = 0
        delay = RESTART_DELAYS[min(child.restarts, len(RESTART_DELAYS) - 1)]
        print(
            f"kaizen: {child.name} exited with code {code}; restarting in {delay} s (log: {child.log_path})",
            file=sys.stderr,
        )
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.1)
        if not self.stopping:
            child.restarts += 1
            child.start(self.env)

    def stop_all(self, grace: float = 20) -> None:
        """SIGTERM every child, wait up to ``grace`` seconds, SIGKILL what is left."""
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


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return env
