"""What the benchmarks share: a broker to run against, and latency statistics."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kaizen_cli.kafka_local import LocalKafka

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """``KAIZEN_KAFKA_BOOTSTRAP`` if set, else a fresh local broker on free ports."""
    if os.environ.get("KAIZEN_KAFKA_BOOTSTRAP"):
        yield os.environ["KAIZEN_KAFKA_BOOTSTRAP"]
        return
    home = Path(tempfile.mkdtemp(prefix="kaizen-bench-"))
    kafka = LocalKafka(home, free_port(), free_port(), lib_dir=REPO / ".kaizen" / "kafka" / "lib")
    kafka.ensure_jars()
    try:
        yield kafka.start()
    finally:
        kafka.stop()


def summary(latencies_s: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies_s)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms (n={len(ms)})"
