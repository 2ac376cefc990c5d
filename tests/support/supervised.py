"""``kaizen up`` as a user runs it, in a subprocess, for tests that need its supervisor.

``kaizen_up`` starts ``python -m kaizen_cli.main up`` against the test run's broker (so no
broker of its own), a fresh topic prefix and home, and the read model at ``db_url``; it
waits for "Kaizen is up", reads the first key from ``first-key.txt`` and yields. On exit it
sends SIGINT (Ctrl-C), waits, and kills anything left behind. ``Supervised.services()``
finds each service's current pid among the supervisor's children, so a test can kill one
and watch the supervisor bring it back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kaizen_cli.up import SERVICE_MODULES
from tests.fakes._server import git_hosts
from tests.support.broker import free_ports
from tests.support.system import TEST_SECRET_KEY

#: ``kaizen up``'s service name for each module it runs (``-m <module>`` on the command line).
SERVICE_OF_MODULE = {module: name for name, module in SERVICE_MODULES.items()}


@dataclass
class Supervised:
    """A running ``kaizen up``: its process, API, first key and environment."""

    process: subprocess.Popen[bytes]
    api_url: str
    key: str
    env: dict[str, str]
    home: Path
    prefix: str
    output: Path

    def services(self) -> dict[str, int]:
        """The live pid of each service the supervisor runs now (a dead or restarting one is absent)."""
        found: dict[str, int] = {}
        for pid in children(self.process.pid):
            argv = _argv(pid)
            if "-m" in argv and argv.index("-m") + 1 < len(argv):
                name = SERVICE_OF_MODULE.get(argv[argv.index("-m") + 1])
                if name is not None and alive(pid):
                    found[name] = pid
        return found

    def logs(self, tail: int = 4000) -> str:
        parts = [f"--- kaizen up ---\n{self.output.read_text(errors='replace')[-tail:]}"]
        parts += [
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-tail:]}"
            for p in sorted((self.home / "logs").glob("*.log"))
        ]
        return "\n".join(parts)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        for child in children(frontier.pop()):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent's ``wait``."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


@contextlib.contextmanager
def kaizen_up(
    kafka_bootstrap: str,
    home: Path,
    *,
    db_url: str,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> Iterator[Supervised]:
    """Run ``kaizen up`` until the block ends; yields once it printed "Kaizen is up"."""
    home.mkdir(parents=True, exist_ok=True)
    [api_port] = free_ports(1)
    prefix = f"chaos-{uuid.uuid4().hex[:10]}"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")},
        "KAIZEN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "KAIZEN_TOPIC_PREFIX": prefix,
        "KAIZEN_HOME": str(home),
        "KAIZEN_API_PORT": str(api_port),
        "KAIZEN_DATABASE_URL": db_url,
        "KAIZEN_PARTITIONS": "3",
        "KAIZEN_HEARTBEAT_SECONDS": "1",
        "KAIZEN_SECRET_KEY": TEST_SECRET_KEY.decode(),
        "KAIZEN_GIT_HOSTS": git_hosts(),  # the fakes started before this system
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "COLUMNS": "200",  # rich wraps at 80 columns without a terminal
        **(env or {}),
    }
    output = home / "kaizen-up.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "kaizen_cli.main", "up"],
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    up = Supervised(process, f"http://127.0.0.1:{api_port}", "", full_env, home, prefix, output)
    ok = False
    try:
        deadline = time.monotonic() + timeout
        while "Kaizen is up" not in output.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kaizen up did not come up:\n{up.logs()}")
            time.sleep(0.3)
        up.key = (home / "first-key.txt").read_text().strip()
        yield up
        ok = True
    finally:
        started = descendants(process.pid)
        _stop(process)
        for pid in started:  # nothing may outlive `kaizen up`: never leave a process behind
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if not ok:
            print(up.logs())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(90)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
