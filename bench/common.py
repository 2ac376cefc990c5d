"""What the benchmarks share: a broker to run against, latency statistics and the load they ran under."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import statistics
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from bench.scratch import scratch_dir
from kaizen_cli.kafka_local import LocalKafka

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# The JVM of each broker that broker() started, by its bootstrap address (see broker_pid).
_STARTED: dict[str, int] = {}


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """``KAIZEN_KAFKA_BOOTSTRAP`` if set, else a fresh local broker on free ports."""
    if os.environ.get("KAIZEN_KAFKA_BOOTSTRAP"):
        yield os.environ["KAIZEN_KAFKA_BOOTSTRAP"]
        return
    home = scratch_dir("kaizen-bench-")
    kafka = LocalKafka(home, free_port(), free_port(), lib_dir=REPO / ".kaizen" / "kafka" / "lib")
    kafka.ensure_jars()
    bootstrap = ""
    try:
        bootstrap = kafka.start()
        if (pid := kafka.status()["pid"]) is not None:
            _STARTED[bootstrap] = pid
        yield bootstrap
    finally:
        _STARTED.pop(bootstrap, None)
        kafka.stop()


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the broker :func:`broker` started at ``bootstrap``, to count its CPU time.

    None for a broker given by ``KAIZEN_KAFKA_BOOTSTRAP``: it may be remote, or shared with
    other work, so its CPU time is not this benchmark's to count.
    """
    return _STARTED.get(bootstrap)


def tool(name: str) -> str:
    """The executable ``name``, also looked for beside this Python (py-spy lives in the venv)."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        hint = "scripts/system-deps.sh installs wrk; pip install py-spy"
        raise SystemExit(f"{name} is not installed ({hint})")
    return found


def percentiles(latencies_s: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ms = sorted(x * 1000 for x in latencies_s)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def summary(latencies_s: list[float]) -> str:
    p50, p99 = percentiles(latencies_s)
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies_s) * 1000:.2f} ms (n={len(latencies_s)})"


class LoadSampler:
    """Samples the 1-minute load average in the background, to say under what load we measured."""

    def __init__(self, every_seconds: float = 5.0) -> None:
        self.every = every_seconds
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        samples = self.samples or [os.getloadavg()[0]]
        mean = sum(samples) / len(samples)
        return (
            f"load average (1 min) mean {mean:.1f}, max {max(samples):.1f} "
            f"over {len(samples)} samples on {os.cpu_count()} cores"
        )


#: The first key of a benchmark's own API: bootstrapping needs an operator secret (issue 11).
BOOTSTRAP_TOKEN = secrets.token_urlsafe(24)
BOOTSTRAP_HEADER = {"X-Bootstrap-Token": BOOTSTRAP_TOKEN}


async def new_database(server: str, name: str) -> str:
    """Create database ``name`` on the PostgreSQL server whose ``…/postgres`` URL is ``server``."""
    import asyncpg

    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.rsplit("/", 1)[0] + f"/{name}"
