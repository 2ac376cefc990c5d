"""A downstream team's faust app: jobs by status per task, from Kaizen's job events.

It follows ``<prefix>.tasks`` (every task-scoped event, keyed by task id), keeps only job
and PR events, validates each record against the JSON Schema Kaizen publishes in
``docs/events/`` and folds it into two faust Tables keyed by task id (so they are
co-partitioned with the topic): each job's status, and the count of jobs per status.
Every change is printed as one JSON line, ``{"task": ..., "counts": {"SUCCESS": 2, ...}}``.
It imports nothing of Kaizen's: records, schemas and status rules are all it relies on.

Run it beside ``kaizen up`` (see README.md): configuration comes from the environment —
``KAIZEN_KAFKA_BOOTSTRAP`` (default ``127.0.0.1:9092``), ``KAIZEN_TOPIC_PREFIX``
(``kaizen``), ``KAIZEN_PARTITIONS`` (``6``, the partitions of the tasks topic, which the
tables' changelogs must match), ``JOB_COUNTER_ID`` (the app id and consumer group,
``job-counter``) and ``JOB_COUNTER_DATADIR`` (faust's local state):

    python examples/faust_job_counter/app.py worker -l warn
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import faust
import jsonschema

SCHEMAS = Path(os.environ.get("KAIZEN_SCHEMAS", Path(__file__).resolve().parents[2] / "docs" / "events"))
BOOTSTRAP = os.environ.get("KAIZEN_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PREFIX = os.environ.get("KAIZEN_TOPIC_PREFIX", "kaizen")
PARTITIONS = int(os.environ.get("KAIZEN_PARTITIONS", "6"))
APP_ID = os.environ.get("JOB_COUNTER_ID", "job-counter")

log = logging.getLogger("job_counter")

# --- the records: CloudEvents, validated against the published schemas -----------------

#: Envelope v1 attribute names (records written before envelope v2) → today's names.
V1_NAMES = {
    "task_id": "taskid",
    "job_id": "jobid",
    "correlation_id": "correlationid",
    "causation_id": "causationid",
}


def upgrade(event: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """A v1 record in today's layout: renamed attributes, absent ones left out (not null),
    and the record key as ``partitionkey`` (as the CloudEvents Kafka binding reads it)."""
    if not any(old in event for old in V1_NAMES):
        return event
    renamed = {V1_NAMES.get(k, k): v for k, v in event.items()}
    upgraded = {k: v for k, v in renamed.items() if v is not None or k == "data"}
    if key is not None:
        upgraded.setdefault("partitionkey", key.decode())
    return upgraded


def load_validators(directory: Path = SCHEMAS) -> dict[str, jsonschema.Draft202012Validator]:
    return {
        p.name.removesuffix(".json"): jsonschema.Draft202012Validator(json.loads(p.read_text()))
        for p in directory.glob("kaizen.*.json")
    }


# --- the status rules, as Kaizen documents them (docs/events, the Jobs API) ----------------

ACTIVE = {"PENDING", "RUNNING", "EVALUATING", "COMPILING"}
#: Event type → (the status it sets, the statuses it may move a job from). A stage event
#: after the job ended (a late or redelivered record) changes nothing.
TRANSITIONS: dict[str, tuple[str, set[str]]] = {
    "kaizen.job.started.v1": ("RUNNING", ACTIVE),
    "kaizen.job.evaluating.v1": ("EVALUATING", ACTIVE),
    "kaizen.job.compiling.v1": ("COMPILING", ACTIVE),
    "kaizen.job.succeeded.v1": ("SUCCESS", ACTIVE),
    "kaizen.job.failed.v1": ("FAILED", ACTIVE),
    "kaizen.pr.created.v1": ("SUCCESS", ACTIVE | {"PR_FAILED", "SUCCESS"}),
    "kaizen.pr.failed.v1": ("PR_FAILED", ACTIVE | {"PR_FAILED"}),
}


def next_status(current: str | None, type_: str) -> str | None:
    """The job's status after an event of ``type_``; ``current`` when the event changes nothing."""
    if type_ == "kaizen.job.requested.v1":
        return current or "PENDING"
    if type_ in TRANSITIONS and current is not None:
        status, applies_to = TRANSITIONS[type_]
        return status if current in applies_to else current
    return current


# --- the faust app ---------------------------------------------------------------------

app = faust.App(
    APP_ID,
    broker=f"kafka://{BOOTSTRAP}",
    store="memory://",  # tables live in memory and are rebuilt from their changelog topics
    datadir=os.environ.get("JOB_COUNTER_DATADIR", f".{APP_ID}-data"),
    topic_partitions=PARTITIONS,
    processing_guarantee="at_least_once",
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
)
tasks_topic = app.topic(f"{PREFIX}.tasks", key_type=bytes, value_type=bytes, value_serializer="raw")
#: task id → {job id: status}
job_status = app.Table("job-status", default=dict, partitions=PARTITIONS)
#: task id → {status: number of jobs}
status_counts = app.Table("status-counts", default=dict, partitions=PARTITIONS)
validators: dict[str, jsonschema.Draft202012Validator] = {}


def fold(record: dict[str, Any]) -> str | None:
    """Apply one valid job/PR record to the tables; returns its task id when counts changed."""
    task, job = record["taskid"], record["jobid"]
    jobs = dict(job_status[task])
    status = next_status(jobs.get(job), record["type"])
    if status is None or status == jobs.get(job):
        return None
    jobs[job] = status
    job_status[task] = jobs  # re-assign: mutating a table value in place writes nothing
    status_counts[task] = dict(Counter(jobs.values()))
    return str(task)


@app.agent(tasks_topic, concurrency=1)
async def count_jobs(stream: faust.Stream[bytes]) -> None:
    validators.update(load_validators())
    async for event in stream.events():
        record = upgrade(json.loads(event.value), event.key)
        type_ = record.get("type", "")
        if not type_.startswith(("kaizen.job.", "kaizen.pr.")):
            continue
        validator = validators.get(type_)
        if validator is None:
            log.warning("unknown event type %s: update the schemas", type_)
            continue
        errors = sorted(validator.iter_errors(record), key=str)
        if errors:
            log.error("record %s of type %s is invalid: %s", record.get("id"), type_, errors[0].message)
            continue
        task = fold(record)
        if task is not None:
            line = json.dumps({"task": task, "counts": status_counts[task]}, sort_keys=True)
            # ``faust worker`` redirects ``sys.stdout`` into its log; the lines go to the real one.
            print(line, file=sys.__stdout__, flush=True)


if __name__ == "__main__":
    app.main()
