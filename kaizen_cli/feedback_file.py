"""A feedback file as rows to import: parsing JSONL or CSV, chunks, and each chunk's Idempotency-Key.

Pure functions over the file's bytes, so an import is deterministic: the same bytes, task
and options always give the same chunks with the same keys. That is what makes re-running
an interrupted import safe: the chunks that reached the server are answered from its
idempotency record (nothing written twice), the rest are written.

- JSONL (``.jsonl``, ``.ndjson``): one object per line with ``inputs`` (an object),
  ``output``, ``score`` and optionally ``task_id``, ``source``, ``metadata``.
- CSV (``.csv``): a header row; the columns ``output``, ``score``, ``task_id``,
  ``source`` and ``metadata`` (a JSON object) are those fields, every other column is an
  input field (a string).

A row that cannot become a feedback item here (not JSON, a score that is not a number, no
task) is refused with its line number and never sent; the server judges everything else.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kaizen_client import models as m
from pydantic import ValidationError

RESERVED_COLUMNS = ("task_id", "output", "score", "source", "metadata")
MAX_CHUNK_ITEMS = 1000  # the batch endpoint's limit
#: Below the API's request-body limit, with room for the JSON around the items.
MAX_CHUNK_BYTES = 900_000


@dataclass(frozen=True)
class Row:
    """A feedback item and the line of the file it starts on."""

    line: int
    item: m.FeedbackCreate


@dataclass(frozen=True)
class Refusal:
    """A row that was not imported: its line, and why in plain words."""

    line: int
    reason: str
    status: int | None = None  # the server's status; None when refused before sending


@dataclass(frozen=True)
class Chunk:
    index: int
    rows: list[Row]
    key: str


class UnknownFormat(ValueError):
    """The file's extension is neither JSONL nor CSV."""


def file_format(name: str) -> str:
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    raise UnknownFormat(f"{name}: expected a .jsonl, .ndjson or .csv file")


def parse(data: bytes, fmt: str, task_id: str | None, source: str | None) -> tuple[list[Row], list[Refusal]]:
    """Every row of the file as an item (``task_id``/``source`` fill rows that lack them)."""
    text = data.decode("utf-8-sig")
    records = _jsonl(text) if fmt == "jsonl" else _csv(text)
    rows: list[Row] = []
    refused: list[Refusal] = []
    for line, record in records:
        if isinstance(record, str):
            refused.append(Refusal(line, record))
            continue
        if task_id is not None:
            record.setdefault("task_id", task_id)
        if source is not None:
            record.setdefault("source", source)
        if "task_id" not in record:
            refused.append(Refusal(line, "no task_id (give the task with --task)"))
            continue
        try:
            rows.append(Row(line, m.FeedbackCreate.model_validate(record)))
        except ValidationError as exc:
            refused.append(Refusal(line, _validation_text(exc)))
    return rows, refused


def _jsonl(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            yield number, f"not JSON: {exc}"
            continue
        yield number, value if isinstance(value, dict) else "not a JSON object"


def _csv(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        return
    start = reader.line_num + 1
    for raw in reader:
        line, start = start, reader.line_num + 1  # a quoted field may span several lines
        if None in raw:
            yield line, "more values than the header has columns"
            continue
        yield line, _csv_record(raw)


def _csv_record(raw: dict[str, str | None]) -> dict[str, Any] | str:
    record: dict[str, Any] = {"inputs": {}}
    for column, value in raw.items():
        if column in RESERVED_COLUMNS:
            if value:
                record[column] = value
        else:
            record["inputs"][column] = value or ""
    if "score" in record:
        try:
            record["score"] = float(record["score"])
        except ValueError:
            return f"score {record['score']!r} is not a number"
    if "metadata" in record:
        try:
            record["metadata"] = json.loads(record["metadata"])
        except ValueError:
            return "metadata is not JSON"
    return record


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "row"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def chunks(rows: list[Row], data: bytes, task_id: str | None, source: str | None, size: int) -> list[Chunk]:
    """Consecutive rows, ``size`` at most and under ``MAX_CHUNK_BYTES`` each, with their keys."""
    digest = hashlib.sha256()
    for part in (data, repr((task_id, source, size)).encode()):
        digest.update(part)
    run = digest.hexdigest()[:32]
    result: list[Chunk] = []
    current: list[Row] = []
    weight = 0
    for row in rows:
        item_bytes = len(row.item.model_dump_json(by_alias=True)) + 1
        if current and (len(current) >= size or weight + item_bytes > MAX_CHUNK_BYTES):
            result.append(_chunk(run, len(result), current))
            current, weight = [], 0
        current.append(row)
        weight += item_bytes
    if current:
        result.append(_chunk(run, len(result), current))
    return result


def _chunk(run: str, index: int, rows: list[Row]) -> Chunk:
    return Chunk(index, rows, f"kaizen-import-{run}-{index}")
