"""Parsing an uploaded JSONL file of seed examples. Pure and CPU-bound: run it in a thread.

One JSON object per line: ``{"inputs": {...}, "output": "...", "score": 1.0, "metadata": {}}``
(``score`` and ``metadata`` optional). Blank lines are skipped. Each bad line is
reported by number; only the first :data:`MAX_REPORTED_ERRORS` are listed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.api.domain import input_mismatch
from services.api.storable import unstorable
from services.api.validation import describe, summary
from shared.events.feedback import Seed

MAX_REPORTED_ERRORS = 20
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_LINE_BYTES = 256 * 1024
#: Seeds and bytes per ``SeedsUploaded`` event: keeps each record far below Kafka's 1 MB limit.
SEEDS_PER_EVENT = 200
BYTES_PER_EVENT = 512 * 1024


class SeedFileError(ValueError):
    """The file as a whole is unusable (empty, not UTF-8)."""


class _SeedLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any]
    output: str
    score: float = Field(1.0, ge=0, le=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


@dataclass
class ParsedSeeds:
    """Valid seeds (at most ``room``), how many lines were rejected, and why (the first few)."""

    seeds: list[Seed] = field(default_factory=list)
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "message": message})


def parse_seeds(
    data: bytes,
    schema: list[str] | dict[str, Any] | None,
    room: int,
    limit: int,
    ids: Callable[[int], uuid.UUID] | None = None,
) -> ParsedSeeds:
    """Parse ``data``; lines beyond ``room`` (what is left of the task's ``limit``) are rejected.

    ``ids`` gives a seed's id from its line number (an upload with an ``Idempotency-Key``);
    without it every seed gets a random id.
    """
    if not data.strip():
        raise SeedFileError("the file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeedFileError(f"the file is not UTF-8 (invalid byte at position {exc.start})") from exc
    parsed = ParsedSeeds()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line.encode()) > MAX_LINE_BYTES:
            parsed.reject(number, f"the line is longer than {MAX_LINE_BYTES // 1024} KiB")
            continue
        item = _parse_line(line, schema, ids(number) if ids is not None else uuid.uuid4())
        if isinstance(item, str):
            parsed.reject(number, item)
        elif len(parsed.seeds) >= room:
            parsed.reject(number, f"the task's seed limit of {limit} is reached")
        else:
            parsed.seeds.append(item)
    return parsed


def _parse_line(line: str, schema: list[str] | dict[str, Any] | None, feedback_id: uuid.UUID) -> Seed | str:
    """The line's seed, or why it is not one."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(raw, dict):
        return "must be a JSON object"
    try:
        item = _SeedLine.model_validate(raw)
    except ValidationError as exc:
        return summary(describe(exc.errors()))
    unstorable_text = unstorable(raw)
    if unstorable_text:
        return summary(describe(unstorable_text))
    mismatch = input_mismatch(schema, item.inputs)
    if mismatch:
        return summary(mismatch)
    return Seed(feedback_id=feedback_id, **item.model_dump())


def in_parts(
    seeds: list[Seed], size: int = SEEDS_PER_EVENT, max_bytes: int = BYTES_PER_EVENT
) -> list[list[Seed]]:
    """Consecutive parts of at most ``size`` seeds and about ``max_bytes`` of JSON each."""
    parts: list[list[Seed]] = []
    current: list[Seed] = []
    current_bytes = 0
    for seed in seeds:
        seed_bytes = len(seed.model_dump_json())
        if current and (len(current) >= size or current_bytes + seed_bytes > max_bytes):
            parts.append(current)
            current, current_bytes = [], 0
        current.append(seed)
        current_bytes += seed_bytes
    if current:
        parts.append(current)
    return parts
