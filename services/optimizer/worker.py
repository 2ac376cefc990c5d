"""Subprocess entry of one job: ``python -m services.optimizer.worker``.

Protocol: one ``JobSpec`` JSON document on stdin; on stdout one JSON object per line
— progress events (``spec.Progress``), then exactly one ``{"type": "result", ...}`` or
``{"type": "failure", ...}``. Exit status 0 with a result, 1 with a failure. Logs go to
stderr only: the real stdout is kept for the protocol and file descriptor 1 is pointed
at stderr, so a stray ``print`` in a library (DSPy prints) cannot corrupt the stream.

SIGTERM asks the job to stop at its next safe point; it then reports a failure of
kind ``cancelled`` with whatever it measured. A process that needs killing is killed
by the parent (``subprocess_runner``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import TextIO

from pydantic import BaseModel, ValidationError

from services.optimizer.spec import FailureMessage, JobFailed, JobFailure, JobSpec, ResultMessage
from shared import tracing

log = logging.getLogger("services.optimizer.worker")


def _protocol_stream() -> TextIO:
    """Keep the real stdout for the protocol; send everything else written to fd 1 to stderr."""
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol


class _Emitter:
    """Writes protocol lines; one lock, because DSPy may report from several threads."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, message: BaseModel) -> None:
        line = message.model_dump_json()
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def failure(self, kind: str, message: str) -> int:
        self(FailureMessage(failure=JobFailure(kind=kind, error_message=message)))
        return 1


def _read_spec(emit: _Emitter) -> JobSpec | None:
    try:
        return JobSpec.model_validate_json(sys.stdin.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "spec"
        message = f"invalid job spec ({exc.error_count()} errors), first at {where}: {first['msg']}"
        emit.failure("invalid_spec", message)
        return None


def main() -> int:
    """Run one job from stdin; return the process exit status."""
    emit = _Emitter(_protocol_stream())
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("KAIZEN_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stopping = threading.Event()

    def _request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d: stopping at the next safe point", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, _request_stop)
    spec = _read_spec(emit)
    if spec is None:
        return 1
    # The parent passes KAIZEN_TRACING and the job span's TRACEPARENT (subprocess_runner).
    tracing.setup(os.environ.get("KAIZEN_TRACING", "off"), "kaizen-optimizer")
    try:
        with tracing.from_env("job worker", os.environ, **{"kaizen.job_id": str(spec.job_id)}):
            return _run(spec, emit, stopping)
    finally:
        tracing.shutdown()


def _run(spec: JobSpec, emit: _Emitter, stopping: threading.Event) -> int:
    from services.optimizer.pipeline.run import run_job  # slow (dspy); after the spec is known good

    if stopping.is_set():
        return emit.failure("cancelled", "cancelled by request")
    try:
        result = run_job(spec, emit, stopping.is_set)
    except JobFailed as failed:
        emit(FailureMessage(failure=failed.failure))
        return 1
    except Exception as exc:  # run_job maps expected failures; this is a bug, said plainly
        log.exception("optimizer worker crashed")
        return emit.failure("crashed", f"optimizer worker crashed: {type(exc).__name__}: {str(exc)[:500]}")
    emit(ResultMessage(result=result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
