"""``kaizen-client``'s ``feedback()``: calls/s into the buffer from one thread, and the
delivery rate to the live API.

1. Buffer: one thread calls ``feedback()`` as fast as it can, the server unreachable
   (nothing is delivered, so only the caller's cost is timed); the buffer is large enough
   that nothing is dropped. Prints calls/s and the per-call p50/p99.
2. Delivery: the live system (every service a process, SQLite read model) on a fresh
   broker; one thread queues ``--items`` feedback items, then ``flush()`` waits until the
   server has accepted all of them (durable in Kafka *and* visible in the read model).
   Prints items/s from the first call to the end of the flush. One client keeps one batch in
   flight; ``--senders N`` spreads the items over N clients, N batches in flight.
3. CPU per item, over the same interval: the CPU time (user + system, ``/proc/<pid>/stat``)
   that the API, the projector, the broker (the java process this script started; left out
   with ``KAIZEN_KAFKA_BOOTSTRAP``) and this client process spent, as
   ``cpu per 1,000 items: api … ms, projector … ms, broker … ms, client … ms; total … ms
   (… cores busy)``, then the cores those costs would keep busy at issue 10's 20,000 items/s,
   with and without the client, beside ``os.cpu_count()``. All of them share the machine's
   cores, so more cores than it has means the target is bounded by CPU (``bench.cpu``).

    .venv/bin/python -m bench.client_throughput [--calls 200000] [--items 20000] [--senders 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

from bench.common import REPO, broker, broker_pid, free_port
from bench.cpu import cores_at, cost_line, metered, per_unit_ms
from bench.scratch import add_keep, cleaned_up, scratch_dir
from tests.support.live import live_system

sys.path.insert(0, str(REPO / "clients" / "python"))

from kaizen_client import Kaizen

TARGET = 20_000  # items/s, durable and visible (issue 10)
PER = 1_000  # CPU is shown per this many items


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


def delivery(items: int, batch_size: int, senders: int = 1) -> None:
    """``senders`` > 1: that many clients (each its own buffer and sender thread) share the
    items round robin, so that many batches are in flight at once. One client keeps one batch
    in flight, so its figure is bounded by a batch's round trip (append, Kafka's ack, the
    projector applying it), not by what the server can take.
    """
    with (
        broker() as bootstrap,
        live_system(
            bootstrap,
            scratch_dir("kaizen-bench-client-"),
            services=("projector", "api"),
            env={"KAIZEN_LOG_LEVEL": "WARNING"},
        ) as live,
    ):
        status, task = live.request(
            "POST", "/api/v1/tasks", {"name": "bench", "feedback_threshold": 1_000_000}
        )
        assert status == 201, task
        clients = [
            Kaizen(live.api_url, live.key, buffer_size=items + 1, batch_size=batch_size, flush_interval=0.05)
            for _ in range(senders)
        ]
        pids = {name: live.processes[name].pid for name in ("api", "projector")}
        pids |= {"broker": kafka} if (kafka := broker_pid(bootstrap)) is not None else {}
        with metered(pids | {"client": os.getpid()}) as used:
            started = time.perf_counter()
            for n in range(items):
                clients[n % senders].feedback(task["id"], {"ticket": f"t{n}"}, "finance", 0.9)
            queued = time.perf_counter() - started
            for client in clients:
                assert client.flush(600), client.stats
            elapsed = time.perf_counter() - started
        stats = [client.stats for client in clients]
        for client in clients:
            client.close()
        _, shown = live.request("GET", f"/api/v1/tasks/{task['id']}")
        print(
            f"delivery: {items:,} items in {elapsed:.1f} s = {items / elapsed:,.0f} items/s, durable+visible "
            f"(batches of {batch_size}, {senders} sender(s); queueing took {queued * 1000:.0f} ms); "
            f"sent {sum(s.sent for s in stats)}, retries {sum(s.retries for s in stats)}, "
            f"dropped {sum(s.dropped for s in stats)}, failed {sum(s.failed for s in stats)}; "
            f"read model count {shown['feedback_count']}"
        )
        print(f"delivery: {cost_line(used, items, elapsed, unit='item', per=PER)}")
        print(needed(per_unit_ms(used, items, PER), os.cpu_count(), counted=kafka is not None))


def needed(ms: dict[str, float], cores: int | None, counted: bool = True) -> str:
    """The cores ``TARGET`` items/s would keep busy at ``ms`` CPU milliseconds per ``PER`` items."""
    note = "" if counted else " (the broker, not started here, not counted)"
    return (
        f"at {TARGET:,} items/s these costs need {cores_at(ms, TARGET, PER):.2f} cores, "
        f"{cores_at(ms, TARGET, PER, leave_out='client'):.2f} without the client{note}; "
        f"the machine has {cores} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--senders", type=int, default=1, help="clients sending at once (each keeps one batch in flight)"
    )
    parser.add_argument("--skip-delivery", action="store_true")
    add_keep(parser)
    args = parser.parse_args()
    into_buffer(args.calls)
    if not args.skip_delivery:
        with cleaned_up(args.keep):
            delivery(args.items, args.batch_size, args.senders)


if __name__ == "__main__":
    main()
