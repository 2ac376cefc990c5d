"""Run Kaizen's services in-process against a real broker and database, for tests.

Each test gets its own topics (a fresh prefix) and consumer groups, so tests never see
each other's events. Services run as asyncio tasks and stop when the block exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shared.events.envelope import Envelope
from shared.events.topics import Topics
from shared.git_policy import Origin, parse_allowlist
from shared.kafka.producer import EventLog, Position
from shared.readmodel.db import create_schema, make_engine
from shared.readmodel.tables import projector_offsets

# The Fernet key the test API and the test PR publisher share (tests only).
TEST_SECRET_KEY = b"kYvJ4kpsGm1c8cRk9o0s7y0kqQy3o2pmv2ZsY0m4r5E="
#: The bootstrap token test APIs are configured with (KAIZEN_BOOTSTRAP_TOKEN): without one,
#: POST /api/v1/keys/bootstrap is closed, as in production.
TEST_BOOTSTRAP_TOKEN = "test-bootstrap-token-0123456789"
#: The header that carries it.
BOOTSTRAP_HEADER = {"X-Bootstrap-Token": TEST_BOOTSTRAP_TOKEN}

ServiceRunner = Callable[[str, Topics, str, asyncio.Event], Coroutine[Any, Any, None]]


async def _projector(bootstrap: str, topics: Topics, db_url: str, stop: asyncio.Event) -> None:
    from services.projector.bootstrap import run_projector

    await run_projector(
        bootstrap, topics, db_url, stop, heartbeat_seconds=1.0, group_id=f"{topics.prefix}-projector"
    )


@dataclass
class Options:
    """Knobs tests may turn: where the default models are served, the Git timeout."""

    llm_api_base: str = "http://127.0.0.1:9/v1"
    default_model: str = "openai/smollm2"
    job_time_limit: float = 600
    state_dir: Path | None = None
    secret_key: bytes | None = None


OPTIONS = Options()


async def _optimizer(bootstrap: str, topics: Topics, db_url: str, stop: asyncio.Event) -> None:
    from services.optimizer.bootstrap import run_optimizer
    from services.optimizer.specs import ModelDefaults

    defaults = ModelDefaults(
        OPTIONS.default_model, OPTIONS.default_model, OPTIONS.llm_api_base, OPTIONS.job_time_limit
    )
    state = (OPTIONS.state_dir or Path(tempfile.mkdtemp())) / f"{topics.prefix}-optimizer.db"
    await run_optimizer(
        bootstrap, topics, state, defaults, stop, heartbeat_seconds=1.0, group_id=f"{topics.prefix}-optimizer"
    )


def _pr_publisher(
    bootstrap: str, topics: Topics, db_url: str, stop: asyncio.Event
) -> Coroutine[Any, Any, None]:
    from tests.fakes._server import git_hosts

    # Read now, not when the task first runs: a fake started after the system stays unlisted.
    return _run_pr_publisher(bootstrap, topics, stop, parse_allowlist(git_hosts()))


async def _run_pr_publisher(
    bootstrap: str, topics: Topics, stop: asyncio.Event, git_hosts: tuple[Origin, ...]
) -> None:
    from cryptography.fernet import Fernet

    from services.pr_publisher.bootstrap import run_publisher

    state = (OPTIONS.state_dir or Path(tempfile.mkdtemp())) / f"{topics.prefix}-publisher.db"
    fernet = Fernet(OPTIONS.secret_key or TEST_SECRET_KEY)
    await run_publisher(
        bootstrap,
        topics,
        state,
        fernet,
        stop,
        heartbeat_seconds=1.0,
        group_id=f"{topics.prefix}-publisher",
        git_timeout=5.0,
        git_hosts=git_hosts,
    )


RUNNERS: dict[str, ServiceRunner] = {
    "projector": _projector,
    "optimizer": _optimizer,
    "pr_publisher": _pr_publisher,
}


@dataclass
class System:
    """Handles to a running in-process system."""

    bootstrap: str
    topics: Topics
    db_url: str
    events: EventLog
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def append(self, *envelopes: Envelope) -> list[Position]:
        return await self.events.append_all(list(envelopes))

    async def wait_projected(self, positions: list[Position], timeout: float = 30) -> None:
        """Wait until the projector has applied every position."""
        engine = make_engine(self.db_url)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._raise_if_crashed()
                    async with engine.connect() as conn:
                        rows = (await conn.execute(select(projector_offsets))).all()
                    done = {(r.topic, r.partition): r.next_offset for r in rows}
                    if all(done.get((p.topic, p.partition), 0) > p.offset for p in positions):
                        return
                    await asyncio.sleep(0.02)
        finally:
            await engine.dispose()

    def _raise_if_crashed(self) -> None:
        for name, task in self.tasks.items():
            if task.done() and task.exception() is not None:
                raise RuntimeError(f"service {name} crashed") from task.exception()


@contextlib.asynccontextmanager
async def running_system(
    bootstrap: str, topics: Topics, db_url: str, services: tuple[str, ...] = ("projector",)
) -> AsyncIterator[System]:
    """Start ``services`` in-process; stop them (and check none crashed) on exit."""
    engine = make_engine(db_url)
    await create_schema(engine)
    await engine.dispose()
    events = EventLog(bootstrap, topics, client_id="tests")
    stop = asyncio.Event()
    system = System(bootstrap, topics, db_url, events)
    for name in services:
        system.tasks[name] = asyncio.create_task(RUNNERS[name](bootstrap, topics, db_url, stop), name=name)
    try:
        yield system
        system._raise_if_crashed()
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*system.tasks.values(), return_exceptions=True), 30)
        await events.stop()
