"""``/livez``, ``/readyz``, ``/health`` and fast 503s, without a working broker.

Kafka is a closed port (a stopped broker), or for the fast-503 test a listener that
accepts connections and never answers (a broker that hangs, or one whose death the
producer has not noticed): there a write that tried the broker would wait out the
producer's 10 s timeout. The read model is a fresh SQLite file with keys inserted
directly (the projector's job).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.api.main import create_app
from services.api.security import hash_key, key_prefix, new_api_key
from shared.loops import LoopHealth
from shared.readmodel.db import make_engine
from shared.readmodel.tables import api_keys, heartbeats, service_loops
from shared.settings import Settings

pytestmark = pytest.mark.timeout(60)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"


@contextlib.asynccontextmanager
async def running_app(tmp_path: Path, db_url: str, bootstrap: str) -> AsyncIterator[FastAPI]:
    settings = Settings(home=tmp_path, write_timeout_seconds=10, loop_stall_seconds=30)
    application = create_app(settings, bootstrap=bootstrap, db_url=db_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def app(tmp_path: Path, db_url: str) -> AsyncIterator[FastAPI]:
    async with running_app(tmp_path, db_url, f"127.0.0.1:{closed_port()}") as application:
        yield application


@contextlib.asynccontextmanager
async def silent_broker() -> AsyncIterator[str]:
    """A TCP listener that reads requests and never answers them."""
    connections: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in connections:
            writer.close()


async def insert(db_url: str, table: object, **values: object) -> None:
    engine = make_engine(db_url)
    async with engine.begin() as conn:
        await conn.execute(table.insert().values(**values))  # type: ignore[attr-defined]
    await engine.dispose()


async def new_key(db_url: str, role: str) -> str:
    value = new_api_key()
    await insert(
        db_url,
        api_keys,
        id=str(uuid.uuid4()),
        name=role,
        key_hash=hash_key(value),
        prefix=key_prefix(value),
        status="active",
        bootstrap=False,
        created_at=datetime.now(UTC),
        role=role,
    )
    return value


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


async def until_known_down(app: FastAPI) -> None:
    async with asyncio.timeout(20):
        while not app.state.kaizen.probe.state.known_down:
            await asyncio.sleep(0.05)


async def test_a_write_while_kafka_is_known_down_is_503_with_retry_after_without_waiting_for_it(
    tmp_path: Path, db_url: str
) -> None:
    async with (
        silent_broker() as bootstrap,
        running_app(tmp_path, db_url, bootstrap) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        key = await new_key(db_url, "admin")
        await until_known_down(app)

        started = time.monotonic()
        response = await client.post("/api/v1/tasks", json={"name": "t"}, headers={"X-API-Key": key})
        elapsed = time.monotonic() - started

    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["detail"] == "Kafka is unavailable; nothing was written; retry"
    # Not a speed claim: a write that tried the broker would wait out the 10 s write timeout;
    # the known-down answer skips it. Half of it separates the two even on a loaded machine.
    assert elapsed < 10 / 2, f"the 503 took {elapsed:.1f} s: it waited for the broker"


async def test_a_write_that_can_never_fit_a_record_is_413_even_while_kafka_is_known_down(
    tmp_path: Path, db_url: str
) -> None:
    async with (
        silent_broker() as bootstrap,
        running_app(tmp_path, db_url, bootstrap) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        key = await new_key(db_url, "admin")
        await until_known_down(app)
        body = {"name": "big", "description": "x" * 1_000_000}  # under the body limit, over a record
        response = await client.post("/api/v1/tasks", json=body, headers={"X-API-Key": key})

    assert response.status_code == 413, response.text  # a retry could never succeed: not a 503


async def test_readyz_is_503_while_kafka_is_down_but_livez_stays_200(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await until_known_down(app)

    ready = await client.get("/readyz")
    live = await client.get("/livez")

    assert ready.status_code == 503 and ready.json()["health"] == {"status": "degraded"}
    assert live.status_code == 200 and live.json() == {"status": "ok"}


async def test_without_a_key_health_says_only_up_or_down(app: FastAPI, client: httpx.AsyncClient) -> None:
    await until_known_down(app)

    for path in ("/health", "/readyz"):
        response = await client.get(path, headers={"X-API-Key": "kaizen_" + "0" * 32})  # not a key
        body = response.json()
        assert response.status_code == 503
        assert body["health"] == {"status": "degraded"}
        assert "127.0.0.1" not in response.text and "Kafka" not in response.text, response.text


async def test_an_ingest_key_sees_no_detail_and_a_read_key_sees_kafka_and_the_loops(
    app: FastAPI, client: httpx.AsyncClient, db_url: str
) -> None:
    await until_known_down(app)
    ingest, read = await new_key(db_url, "ingest"), await new_key(db_url, "read")

    hidden = (await client.get("/health", headers={"X-API-Key": ingest})).json()
    shown = (await client.get("/health", headers={"X-API-Key": read})).json()["health"]

    assert hidden["health"] == {"status": "degraded"}
    assert shown["kafka"]["reachable"] is False and "did not answer" in shown["kafka"]["error"]
    [watch] = shown["loops"]
    assert watch["name"] == "broker-watch" and watch["alive"] and not watch["stuck"]
    assert watch["last_progress"].endswith("Z")


async def test_a_stuck_loop_of_this_process_fails_livez(app: FastAPI, client: httpx.AsyncClient) -> None:
    stuck: LoopHealth = app.state.loops.track("wedged")
    stuck.busy_since = time.monotonic() - 31  # an iteration running past the 30 s bound

    response = await client.get("/livez")

    assert response.status_code == 503 and response.json()["health"] == {"status": "degraded"}


async def test_a_live_service_reporting_a_stuck_loop_is_named_in_health(
    app: FastAPI, client: httpx.AsyncClient, db_url: str
) -> None:
    read = await new_key(db_url, "read")
    beat = datetime.now(UTC) - timedelta(seconds=2)
    instance = "optimizer@host:42:abc123"
    await insert(db_url, heartbeats, instance=instance, service="optimizer", pid=42, time=beat, active_jobs=0)
    for loop, busy in (("reconcile", 29.0), ("consume", None)):
        await insert(
            db_url,
            service_loops,
            instance=instance,
            loop=loop,
            time=beat,
            alive=True,
            seconds_since_progress=40.0,
            busy_seconds=busy,
            failures=0,
        )

    health = (await client.get("/health", headers={"X-API-Key": read})).json()["health"]

    [optimizer] = [s for s in health["services"] if s["service"] == "optimizer"]
    loops = {loop["name"]: loop for loop in optimizer["loops"]}
    assert loops["reconcile"]["stuck"] is True and loops["reconcile"]["busy_seconds"] >= 31
    assert loops["consume"]["stuck"] is False  # idle, waiting for records
    assert any("reconcile of optimizer" in w for w in health["warnings"])
