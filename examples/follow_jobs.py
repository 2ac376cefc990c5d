"""A downstream team's consumer: follow Kaizen's job events without importing Kaizen.

It reads ``<prefix>.tasks`` with plain aiokafka, keeps only job and PR events, validates
each record against the published JSON Schema in ``docs/events/`` and prints one line
per event. Records are CloudEvents (structured mode, ``docs/events/envelope.md``); ones
written before envelope v2 carry ``task_id``-style attribute names and are renamed first.
Run it beside a running Kaizen:

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
#: Envelope v1 attribute names (records written before v2) → today's CloudEvents names.
V1_NAMES = {
    "task_id": "taskid",
    "job_id": "jobid",
    "correlation_id": "correlationid",
    "causation_id": "causationid",
}


def load_schemas() -> dict[str, dict[str, object]]:
    return {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in SCHEMAS.glob("kaizen.*.json")}


def upgrade(event: dict[str, object], key: bytes | None) -> dict[str, object]:
    """A v1 record in today's layout: renamed attributes, absent ones left out (not null),
    and the record key as ``partitionkey`` (as the CloudEvents Kafka binding reads it)."""
    if not any(old in event for old in V1_NAMES):
        return event
    renamed = {V1_NAMES.get(k, k): v for k, v in event.items()}
    upgraded = {k: v for k, v in renamed.items() if v is not None or k == "data"}
    if key is not None:
        upgraded.setdefault("partitionkey", key.decode())
    return upgraded


def describe(event: dict[str, object]) -> str:
    data = event["data"]
    assert isinstance(data, dict)
    details = {k: data[k] for k in ("trial", "score", "error_message", "pr_url", "reason") if k in data}
    return f"{event['time']}  job {event['jobid']}  {event['type']}  {json.dumps(details)}"


async def follow(bootstrap: str, prefix: str, group: str, limit: int | None) -> None:
    schemas = load_schemas()
    consumer = AIOKafkaConsumer(
        f"{prefix}.tasks", bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen = 0
    try:
        async for record in consumer:
            event = upgrade(json.loads(record.value), record.key)
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
