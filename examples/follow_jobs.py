"""A downstream team's consumer: follow Kaizen's job events without importing Kaizen.

It reads ``<prefix>.tasks`` with plain aiokafka, keeps only job and PR events, validates
each record against the published JSON Schema in ``docs/events/`` and prints one line
per event. Run it beside a running Kaizen:

    python examples/follow_jobs.py --bootstrap 127.0.0.1:9092 --prefix kaizen

Stop it with Ctrl-C. It uses its own consumer group, so it never disturbs Kaizen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import jsonschema
from aiokafka import AIOKafkaConsumer

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "events"
WANTED = ("kaizen.job.", "kaizen.pr.")


def load_schemas() -> dict[str, dict[str, object]]:
    return {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in SCHEMAS.glob("kaizen.*.json")}


def describe(event: dict[str, object]) -> str:
    data = event["data"]
    assert isinstance(data, dict)
    details = {k: data[k] for k in ("trial", "score", "error_message", "pr_url", "reason") if k in data}
    return f"{event['time']}  job {event['job_id']}  {event['type']}  {json.dumps(details)}"


async def follow(bootstrap: str, prefix: str, group: str, limit: int | None) -> None:
    schemas = load_schemas()
    consumer = AIOKafkaConsumer(
        f"{prefix}.tasks", bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen = 0
    try:
        async for record in consumer:
            event = json.loads(record.value)
            type_ = event.get("type", "")
            if not type_.startswith(WANTED):
                continue
            schema = schemas.get(type_)
            if schema is None:
                print(f"unknown event type {type_}: upgrade the schemas")
                continue
            jsonschema.validate(event, schema)
            print(describe(event), flush=True)
            seen += 1
            if limit is not None and seen >= limit:
                return
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--prefix", default="kaizen")
    parser.add_argument("--group", default="job-follower")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many events")
    args = parser.parse_args()
    asyncio.run(follow(args.bootstrap, args.prefix, args.group, args.limit))


if __name__ == "__main__":
    main()
