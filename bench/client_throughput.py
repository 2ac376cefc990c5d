"""``kaizen-client``'s ``feedback()``: calls/s into the buffer from one thread, and the
delivery rate to the live API.

1. Buffer: one thread calls ``feedback()`` as fast as it can, the server unreachable
   (nothing is delivered, so only the caller's cost is timed); the buffer is large enough
   that nothing is dropped. Prints calls/s and the per-call p50/p99.
2. Delivery: the live system (every service a process, SQLite read model) on a fresh
   broker; one thread queues ``--items`` feedback items, then ``flush()`` waits until the
   server has accepted all of them (durable in Kafka *and* visible in the read model).
   Prints items/s from the first call to the end of the flush.

    .venv/bin/python -m bench.client_throughput [--calls 200000] [--items 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import REPO, broker, free_port
from tests.support.live import live_system

sys.path.insert(0, str(REPO / "clients" / "python"))

from kaizen_client import Kaizen


def into_buffer(calls: int) -> None:
    client = Kaizen(
        f"http://127.0.0.1:{free_port()}", "kaizen_" + "0" * 32, buffer_size=calls + 1, exit_timeout=0
    )
    task = str(uuid.uuid4())
    times = []
    started = time.perf_counter()
    for n in range(calls):
        t0 = time.perf_counter_ns()
        client.feedback(task, {"ticket": f"t{n}"}, "finance", 0.9)
        times.append(time.perf_counter_ns() - t0)
    elapsed = time.perf_counter() - started
    times.sort()
    stats = client.stats
    client.close(0)
    p50, p99 = times[len(times) // 2] / 1000, times[int(len(times) * 0.99)] / 1000
    print(
        f"buffer: {calls / elapsed:,.0f} calls/s from one thread; per call p50 {p50:.1f} µs, "
        f"p99 {p99:.1f} µs, max {times[-1] / 1000:.0f} µs; dropped {stats.dropped}"
    )


def delivery(items: int, batch_size: int) -> None:
    with (
        broker() as bootstrap,
        live_system(
            bootstrap,
            Path(tempfile.mkdtemp(prefix="kaizen-bench-client-")),
            services=("projector", "api"),
            env={"KAIZEN_LOG_LEVEL": "WARNING"},
        ) as live,
    ):
        status, task = live.request(
            "POST", "/api/v1/tasks", {"name": "bench", "feedback_threshold": 1_000_000}
        )
        assert status == 201, task
        client = Kaizen(
            live.api_url, live.key, buffer_size=items + 1, batch_size=batch_size, flush_interval=0.05
        )
        started = time.perf_counter()
        for n in range(items):
            client.feedback(task["id"], {"ticket": f"t{n}"}, "finance", 0.9)
        queued = time.perf_counter() - started
        assert client.flush(600), client.stats
        elapsed = time.perf_counter() - started
        stats = client.stats
        client.close()
        _, shown = live.request("GET", f"/api/v1/tasks/{task['id']}")
        print(
            f"delivery: {items:,} items in {elapsed:.1f} s = {items / elapsed:,.0f} items/s, durable+visible "
            f"(batches of {batch_size}; queueing took {queued * 1000:.0f} ms); sent {stats.sent}, "
            f"retries {stats.retries}, dropped {stats.dropped}, failed {stats.failed}; "
            f"read model count {shown['feedback_count']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--skip-delivery", action="store_true")
    args = parser.parse_args()
    into_buffer(args.calls)
    if not args.skip_delivery:
        delivery(args.items, args.batch_size)


if __name__ == "__main__":
    main()
