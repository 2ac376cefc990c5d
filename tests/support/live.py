"""The whole system as a user runs it: each service its own process, the API on a real port.

``live_system`` starts ``python -m services.<name>`` processes against the test run's
broker, with a fresh topic prefix, home directory and read model, waits until the API
answers, and bootstraps an API key. On exit it stops every process (SIGTERM) and, if
the block failed, prints the services' logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes._server import git_hosts
from tests.support.broker import free_ports
from tests.support.system import BOOTSTRAP_HEADER, TEST_BOOTSTRAP_TOKEN, TEST_SECRET_KEY

MODULES = {
    "projector": "services.projector",
    "optimizer": "services.optimizer",
    "pr-publisher": "services.pr_publisher",
    "api": "services.api",
}


@dataclass
class Live:
    api_url: str
    key: str
    env: dict[str, str]
    home: Path
    prefix: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One HTTP call with the bootstrapped key; returns (status, parsed JSON or text)."""
        headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            headers["X-API-Key"] = self.key if key == "default" else key
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode()

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def start(self, name: str) -> None:
        log = (self.home / "logs" / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", MODULES[name]], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-6000:]}"
            for p in sorted((self.home / "logs").glob("*"))
        )


def _wait_for_api(live: Live, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in live.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited during start-up:\n{live.logs()}")
        with contextlib.suppress(OSError):
            status, _ = live.request("GET", "/health", key=None)
            if status in (200, 503):
                return
        time.sleep(0.2)
    raise RuntimeError(f"the API did not answer within {timeout} s:\n{live.logs()}")


@contextlib.contextmanager
def live_system(
    kafka_bootstrap: str,
    home: Path,
    *,
    db_url: str | None = None,
    services: tuple[str, ...] = tuple(MODULES),
    env: dict[str, str] | None = None,
    prefix: str | None = None,
) -> Iterator[Live]:
    """Run ``services`` as processes; yields once the API answers and a key exists."""
    (home / "logs").mkdir(parents=True, exist_ok=True)
    [api_port] = free_ports(1)
    prefix = prefix or f"live-{uuid.uuid4().hex[:10]}"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")},
        "KAIZEN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "KAIZEN_TOPIC_PREFIX": prefix,
        "KAIZEN_HOME": str(home),
        "KAIZEN_API_PORT": str(api_port),
        "KAIZEN_PARTITIONS": "3",
        "KAIZEN_HEARTBEAT_SECONDS": "1",
        "KAIZEN_SECRET_KEY": TEST_SECRET_KEY.decode(),
        "KAIZEN_BOOTSTRAP_TOKEN": TEST_BOOTSTRAP_TOKEN,
        "KAIZEN_LLM_API_BASE": "http://127.0.0.1:9/v1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # The fake Git hosts started before this system, listed by origin like an operator would.
        "KAIZEN_GIT_HOSTS": git_hosts(),
        **({"KAIZEN_DATABASE_URL": db_url} if db_url else {}),
        **(env or {}),
    }
    live = Live(f"http://127.0.0.1:{api_port}", "", full_env, home, prefix)
    ok = False
    try:
        for name in services:
            live.start(name)
        if "api" in services:
            _wait_for_api(live)
            status, body = live.request(
                "POST", "/api/v1/keys/bootstrap", {"name": "e2e"}, key=None, headers=BOOTSTRAP_HEADER
            )
            assert status == 201, body
            live.key = body["key"]
        yield live
        ok = True
    finally:
        for name in reversed(list(live.processes)):
            live.stop(name)
        if not ok:
            print(live.logs())
