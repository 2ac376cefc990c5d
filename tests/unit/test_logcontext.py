"""Log context ids and the JSON line format (``shared/logcontext.py``)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import logcontext
from shared.events.envelope import Envelope
from shared.events.tasks import TaskUpdated


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """A logger writing JSON lines, through the context filter, into a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logcontext.JsonFormatter())
    handler.addFilter(logcontext.ContextFilter("optimizer"))
    logger = logging.getLogger("test.logcontext")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)


def records(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def envelope(task_id: uuid.UUID, correlation_id: str) -> Envelope:
    event = TaskUpdated(task_id=task_id, changes={"name": "x"})
    return Envelope.wrap(event, source="test", correlation_id=correlation_id)


def test_a_record_in_a_bound_block_is_one_json_line_with_its_ids(lines: io.StringIO) -> None:
    job_id = uuid.uuid4()
    with logcontext.bound(job_id=job_id, request_id="r-1"):
        logging.getLogger("test.logcontext").info("job %s runs", "x")
    [line] = records(lines)
    assert line["job_id"] == str(job_id)
    assert line["request_id"] == "r-1"
    assert line["message"] == "job x runs"
    assert line["level"] == "INFO"
    assert line["logger"] == "test.logcontext"
    assert line["service"] == "optimizer"
    assert line["time"].endswith("+00:00")
    assert "task_id" not in line and "exception" not in line


def test_ids_are_unset_again_after_the_block_and_inner_blocks_win() -> None:
    with logcontext.bound(task_id="t", job_id="outer"):
        with logcontext.bound(job_id="inner", correlation_id=None):
            assert logcontext.current() == {"task_id": "t", "job_id": "inner"}
        assert logcontext.current() == {"task_id": "t", "job_id": "outer"}
    assert logcontext.current() == {}


def test_an_explicit_extra_id_wins_over_the_context(lines: io.StringIO) -> None:
    with logcontext.bound(job_id="from-context"):
        logging.getLogger("test.logcontext").info("x", extra={"job_id": "explicit"})
    assert records(lines)[0]["job_id"] == "explicit"


def test_an_exception_is_in_the_line_as_text(lines: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("test.logcontext").exception("failed")
    [line] = records(lines)
    assert line["level"] == "ERROR"
    assert "ValueError: boom" in line["exception"]


def test_a_task_started_in_a_bound_block_keeps_its_ids(lines: io.StringIO) -> None:
    async def child() -> None:
        await asyncio.sleep(0)
        logging.getLogger("test.logcontext").info("in the task")

    async def main() -> None:
        with logcontext.bound(job_id="j"):
            task = asyncio.create_task(child())
        await task

    asyncio.run(main())
    assert records(lines)[0]["job_id"] == "j"


def test_a_batch_binds_only_the_ids_its_envelopes_share() -> None:
    task = uuid.uuid4()
    batch = [envelope(task, "c-1"), None, envelope(task, "c-2")]
    with logcontext.of_batch(batch):
        assert logcontext.current() == {"task_id": str(task)}
    with logcontext.of_batch([None]):
        assert logcontext.current() == {}
    mixed = [envelope(task, "c"), envelope(uuid.uuid4(), "c"), envelope(task, "c")]
    with logcontext.of_batch(mixed):
        assert logcontext.current() == {"correlation_id": "c"}
    with logcontext.of_batch([envelope(task, "c-1"), envelope(uuid.uuid4(), "c-2"), envelope(task, "c-1")]):
        assert logcontext.current() == {}


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError), logcontext.bound(user="x"):
        pass


ROOT = Path(__file__).resolve().parents[2]
PROGRAM = (
    "import logging; from shared.service import configure_logging; from shared.settings import get_settings;"
    "configure_logging('INFO', get_settings().log_format, 'projector');"
    "logging.getLogger('x').info('hello')"
)


@pytest.mark.parametrize(("log_format", "json_expected"), [(None, True), ("text", False), ("json", True)])
def test_a_service_logs_json_lines_unless_text_is_asked_for_off_a_terminal(
    log_format: str | None, json_expected: bool
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")}
    env.update({"KAIZEN_LOG_FORMAT": log_format} if log_format else {})
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = done.stderr.strip().splitlines()[-1]
    if json_expected:
        assert json.loads(line)["service"] == "projector"
    else:
        assert line.endswith("INFO x: hello")
