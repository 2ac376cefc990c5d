"""The API's append path to the broker: idempotent producer, acks=all, one event per call.

Prints sequential latency (one append at a time, what one client sees) and throughput
with concurrent appenders (what the API sees under load).

    .venv/bin/python -m bench.append_path [--events 3000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from bench.common import broker, summary
from bench.scratch import add_keep, cleaned_up
from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventLog


def event(task_id: uuid.UUID) -> Envelope:
    return Envelope.wrap(
        FeedbackRecorded(
            feedback_id=uuid.uuid4(), task_id=task_id, inputs={"text": "x" * 200}, output="y" * 100, score=0.8
        ),
        source="bench",
    )


async def run(bootstrap: str, events: int, concurrency: int) -> None:
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}")
    await ensure_topics(bootstrap, topics, partitions=6)
    log = EventLog(bootstrap, topics, client_id="bench")
    tasks = [uuid.uuid4() for _ in range(50)]
    try:
        await log.append(event(tasks[0]))  # connect and warm up
        latencies = []
        for i in range(events // 3):
            started = time.perf_counter()
            await log.append(event(tasks[i % len(tasks)]))
            latencies.append(time.perf_counter() - started)
        print(f"append, sequential:  {summary(latencies)}")

        concurrent: list[float] = []

        async def worker(n: int) -> None:
            for i in range(n):
                started = time.perf_counter()
                await log.append(event(tasks[i % len(tasks)]))
                concurrent.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*[worker(events // concurrency) for _ in range(concurrency)])
        elapsed = time.perf_counter() - started
        rate = len(concurrent) / elapsed
        print(f"append, {concurrency} concurrent: {rate:.0f} events/s; {summary(concurrent)}")
    finally:
        await log.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure the append path (acks=all).")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    add_keep(parser)
    args = parser.parse_args()
    with cleaned_up(args.keep), broker() as bootstrap:
        asyncio.run(run(bootstrap, args.events, args.concurrency))


if __name__ == "__main__":
    main()
