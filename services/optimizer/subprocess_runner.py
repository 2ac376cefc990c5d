"""Run one job in a killable worker process and stream its progress.

A subprocess, not a thread: a job can then be cancelled or stopped at its wall-clock
limit for certain (SIGTERM, a grace period for a clean stop, then SIGKILL), and a crash
of DSPy or a native library cannot take the consumer down with it
(``notes/stack-pitfalls.md``: long jobs on Kafka). Protocol: see ``worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence

from pydantic import ValidationError

from services.optimizer.spec import (
    FailureMessage,
    JobFailed,
    JobFailure,
    JobResult,
    JobSpec,
    Progress,
    ResultMessage,
    worker_line_adapter,
)
from shared import tracing

log = logging.getLogger(__name__)

GRACE_SECONDS = 10.0
PR_SET_PDEATHSIG = 1
STDERR_TAIL = 40  # lines kept to explain a crash
LINE_LIMIT = 64 * 1024 * 1024  # one result line carries the prompt and DSPy's state
Outcome = ResultMessage | FailureMessage


WORKER_MODULE = ("-m", "services.optimizer.worker")
#: The only ``KAIZEN_*`` settings a worker reads; everything it needs arrives in its spec.
WORKER_SETTINGS = frozenset({"KAIZEN_LOG_LEVEL", "KAIZEN_TRACING"})
# Secrets of the other services that a worker (which runs third-party code on task data)
# must not hold: Git hosts' tokens, database credentials. Provider keys (OPENAI_API_KEY,
# ANTHROPIC_API_KEY, AWS_*, ...) stay: LiteLLM reads them from the environment.
_NOT_FOR_WORKERS = re.compile(
    r"^((GITHUB|GH|GITLAB|GL|GITEA|BITBUCKET)_.*|GIT_.*(TOKEN|PASS|CRED).*|CI_JOB_TOKEN"
    r"|DATABASE_URL|PGPASSWORD|PGPASSFILE)$",
    re.I,
)


def _worker_env(parent: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without Kaizen's settings and other services' secrets."""
    source = os.environ if parent is None else parent
    kept = {
        name: value
        for name, value in source.items()
        if not (name.upper().startswith("KAIZEN_") and name.upper() not in WORKER_SETTINGS)
        and not _NOT_FOR_WORKERS.match(name)
    }
    return {
        **kept,
        **tracing.child_env(),  # TRACEPARENT: the worker's spans continue the job's trace
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # never fetch LiteLLM's price map
        "TQDM_DISABLE": "1",  # DSPy's progress bars would bury the error lines we keep
        "PYTHONUNBUFFERED": "1",
    }


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the optimizer dies (Linux).

    A worker whose optimizer was SIGKILLed must not keep calling the LLM while the job's
    next attempt runs elsewhere: one job, one run at a time.
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


async def _pump_stderr(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    while line := await stream.readline():
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            tail.append(text)
            log.debug("worker: %s", text)


async def _read_protocol(
    stream: asyncio.StreamReader, on_progress: Callable[[Progress], Awaitable[None]]
) -> Outcome | None:
    outcome: Outcome | None = None
    while line := await stream.readline():
        try:
            message = worker_line_adapter.validate_json(line)
        except ValidationError:
            log.warning("ignoring a malformed line from the worker: %r", line[:200])
            continue
        if isinstance(message, ResultMessage | FailureMessage):
            outcome = message
        else:
            await on_progress(message)
    return outcome


async def _stop(
    proc: asyncio.subprocess.Process, reader: asyncio.Task[Outcome | None], grace: float
) -> Outcome | None:
    """SIGTERM, wait ``grace`` seconds for the worker's last word, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(asyncio.shield(reader), grace)
    except TimeoutError:
        return None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


def _crash_message(returncode: int | None, tail: deque[str]) -> str:
    killed = returncode is not None and returncode < 0
    how = f"was killed by signal {-(returncode or 0)}" if killed else f"exited with {returncode}"
    last = " | ".join(list(tail)[-5:]) or "no output on stderr"
    return f"optimizer worker {how} without a result; last stderr lines: {last[-1500:]}"


def _conclude(outcome: Outcome | None, returncode: int | None, tail: deque[str]) -> JobResult:
    if isinstance(outcome, ResultMessage):
        return outcome.result
    if isinstance(outcome, FailureMessage):
        raise JobFailed(outcome.failure)
    raise JobFailed(JobFailure(kind="crashed", error_message=_crash_message(returncode, tail)))


def _partial(outcome: Outcome | None) -> JobResult | None:
    """What a stopped worker measured; a result that raced the stop counts as partial too."""
    if isinstance(outcome, ResultMessage):
        return outcome.result
    return outcome.failure.partial if outcome is not None else None


async def run_in_subprocess(
    spec: JobSpec,
    on_progress: Callable[[Progress], Awaitable[None]],
    cancel: asyncio.Event,
    time_limit: float,
    *,
    grace_seconds: float = GRACE_SECONDS,
    worker: Sequence[str] = WORKER_MODULE,
) -> JobResult:
    """Run ``spec`` in ``python -m services.optimizer.worker``; raise ``JobFailed`` on any failure.

    ``worker``: the interpreter's arguments (tests run a stand-in that speaks the protocol).
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *worker,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_worker_env(),
        limit=LINE_LIMIT,
        preexec_fn=_die_with_parent,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    tail: deque[str] = deque(maxlen=STDERR_TAIL)
    stderr_task = asyncio.create_task(_pump_stderr(proc.stderr, tail))
    reader = asyncio.create_task(_read_protocol(proc.stdout, on_progress))
    cancelled = asyncio.create_task(cancel.wait())
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a dead worker is diagnosed below
            proc.stdin.write(spec.model_dump_json().encode())
            await proc.stdin.drain()
            proc.stdin.close()
        done, _ = await asyncio.wait(
            {reader, cancelled}, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED
        )
        if reader in done:
            outcome = reader.result()  # also re-raises an error of on_progress
            await proc.wait()
            await stderr_task
            return _conclude(outcome, proc.returncode, tail)
        outcome = await _stop(proc, reader, grace_seconds)
        if cancelled in done:
            kind, message = "cancelled", "cancelled by request"
        else:
            kind, message = "timeout", f"wall-clock limit of {time_limit:g} s reached"
        raise JobFailed(JobFailure(kind=kind, error_message=message, partial=_partial(outcome)))
    finally:
        cancelled.cancel()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        for task in (reader, stderr_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
