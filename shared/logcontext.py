"""Who a log line is about: the request, correlation, task and job ids, and JSON lines.

The ids live in context variables, set where they are known (the API's request
middleware, a consumed envelope, a job's run, a publication) with :func:`bound`, and
:class:`ContextFilter` copies them onto every record the process's handler emits. An
``asyncio`` task copies the context it was created in, so a job's subprocess relay and
every other task started inside a bound block carry its ids too.

:class:`JsonFormatter` writes one JSON object per line, so one job can be followed
across every service's log with ``jq -c 'select(.job_id == "<id>")'``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from shared.events.envelope import Envelope

FIELDS = ("request_id", "correlation_id", "task_id", "job_id")
_IDS: dict[str, ContextVar[str | None]] = {name: ContextVar(name, default=None) for name in FIELDS}


@contextlib.contextmanager
def bound(**ids: object) -> Iterator[None]:
    """Within the block, log records carry ``ids`` (``None`` values leave a field as it was)."""
    unknown = set(ids) - set(FIELDS)
    if unknown:
        raise TypeError(f"not a log context field: {sorted(unknown)}")
    tokens = [(_IDS[name], _IDS[name].set(str(value))) for name, value in ids.items() if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _ids(envelope: Envelope) -> dict[str, object]:
    return {"correlation_id": envelope.correlation_id, "task_id": envelope.task_id, "job_id": envelope.job_id}


def of_envelope(envelope: Envelope) -> contextlib.AbstractContextManager[None]:
    """The context of handling ``envelope``: its correlation, task and job ids."""
    return bound(**_ids(envelope))


def of_batch(envelopes: Iterable[Envelope | None]) -> contextlib.AbstractContextManager[None]:
    """The ids every envelope of a batch shares; a field they disagree on stays unset.

    Stops reading at the first point where no id is shared any more: batches of many tasks
    get there within a few records, and this runs for every batch a consumer folds.
    """
    shared: dict[str, object] | None = None
    for envelope in envelopes:
        if envelope is None:
            continue
        if shared is None:
            shared = _ids(envelope)
            continue
        shared = {k: v for k, v in shared.items() if getattr(envelope, k) == v}
        if not shared:
            break
    return bound(**(shared or {}))


def current() -> dict[str, str]:
    """The ids known here and now."""
    return {name: value for name, var in _IDS.items() if (value := var.get()) is not None}


class ContextFilter(logging.Filter):
    """Copies the current ids (and the service's name) onto each record; an ``extra=`` id wins."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        for name, value in current().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, service, ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": getattr(record, "service", None),
        }
        line.update({name: str(v) for name in FIELDS if (v := getattr(record, name, None)) is not None})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The terminal's format, with the job id (or else the request id) when one is known."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for name in ("job_id", "request_id"):
            if (value := getattr(record, name, None)) is not None:
                head, sep, tail = text.partition("\n")
                return f"{head} [{name.removesuffix('_id')} {value}]{sep}{tail}"
        return text
