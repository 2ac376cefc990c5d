"""What the chaos tier's assertions read: the read model through the API, and the log itself."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import codec
from shared.events.feedback import FeedbackRecorded
from shared.events.topics import Topics

TERMINAL = {"SUCCESS", "FAILED", "PR_FAILED"}
PAGE = 200


def every_page(api: httpx.Client, path: str) -> list[dict[str, Any]]:
    """All items of a paginated list."""
    return walk(api, path)[0]


def walk(api: httpx.Client, path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """All items of a paginated list, and the path of each page read. Both kinds of list are
    followed: a JSON array paged by ``offset``, or ``{"items", "next_cursor"}`` paged by cursor."""
    items: list[dict[str, Any]] = []
    pages: list[str] = []
    sep = "&" if "?" in path else "?"
    page_path = f"{path}{sep}limit={PAGE}"
    while True:
        response = api.get(page_path)
        assert response.status_code == 200, (page_path, response.status_code, response.text)
        pages.append(page_path)
        body = response.json()
        if isinstance(body, dict):  # cursor-paged
            items += body["items"]
            if not body.get("next_cursor"):
                return items, pages
            page_path = f"{path}{sep}limit={PAGE}&cursor={quote(str(body['next_cursor']), safe='')}"
        else:
            items += body
            if len(body) < PAGE:
                return items, pages
            page_path = f"{path}{sep}limit={PAGE}&offset={len(items)}"


@dataclass
class LoggedFeedback:
    """The log's FeedbackRecorded events: how many times each id was appended, and which
    ids each (client, seq) pair was appended under."""

    appends: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ids_of_pair: dict[tuple[int, int], set[str]] = field(default_factory=lambda: defaultdict(set))


def logged_feedback(bootstrap: str, topics: Topics) -> LoggedFeedback:
    return asyncio.run(_read_feedback(bootstrap, topics))


async def _read_feedback(bootstrap: str, topics: Topics) -> LoggedFeedback:
    found = LoggedFeedback()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        # Tracking the topic makes the client fetch and keep its metadata.
        await consumer._client.add_topic(topics.tasks)
        partitions = [
            TopicPartition(topics.tasks, p) for p in consumer.partitions_for_topic(topics.tasks) or []
        ]
        assert partitions, f"no partitions of {topics.tasks}"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=500)
                for record in (r for records in batches.values() for r in records):
                    envelope = codec.decode(record.value)
                    if isinstance(envelope.data, FeedbackRecorded):
                        _note(found, envelope.data)
    finally:
        await consumer.stop()
    return found


def _note(found: LoggedFeedback, event: FeedbackRecorded) -> None:
    feedback_id = str(event.feedback_id)
    found.appends[feedback_id] += 1
    meta = event.metadata
    if "client" in meta and "seq" in meta:
        found.ids_of_pair[(int(meta["client"]), int(meta["seq"]))].add(feedback_id)


def wait_until(what: str, probe: Any, timeout: float, every: float = 0.5) -> float:
    """Seconds until ``probe()`` is true; AssertionError naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)
    return time.monotonic() - started


def projector_caught_up(api: httpx.Client) -> bool:
    try:
        health = api.get("/health").json()
    except (httpx.TransportError, ValueError):
        return False
    return isinstance(health, dict) and health.get("projector", {}).get("lag") == 0


def unfinished_jobs(api: httpx.Client) -> list[dict[str, Any]]:
    try:
        jobs = every_page(api, "/api/v1/jobs")
    except (httpx.TransportError, AssertionError):
        return [{"status": "the API did not answer"}]
    return [job for job in jobs if job["status"] not in TERMINAL]
