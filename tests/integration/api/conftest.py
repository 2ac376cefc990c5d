"""The API against a real broker and a real read model (SQLite and PostgreSQL).

``make_api`` runs the projector (and optionally the optimizer) in-process through
``tests/support/system.py``, builds the app on the test's own topics and database, and
bootstraps the first key through the API itself. Job histories are seeded by appending
events to the log exactly as the optimizer and the PR publisher would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.main import create_app
from shared.events.envelope import Envelope
from shared.events.topics import Topics
from shared.readmodel.db import create_schema, make_engine
from shared.settings import Settings
from tests.support.system import (
    BOOTSTRAP_HEADER,
    TEST_BOOTSTRAP_TOKEN,
    TEST_SECRET_KEY,
    System,
    running_system,
)

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance"}
#: The Git token tests configure; no response of any integration test may contain it.
GIT_TOKEN = "ghp_Sup3rSecretT0ken"


async def _never_the_token(response: httpx.Response) -> None:
    await response.aread()
    assert GIT_TOKEN not in response.text, f"{response.request.url} leaked the Git token"


@dataclass
class Api:
    """A running API: an authenticated client, the system behind it, the app's settings."""

    client: httpx.AsyncClient
    transport: httpx.ASGITransport
    system: System
    settings: Settings
    key: str

    async def seed(self, *envelopes: Envelope) -> None:
        """Append events as another service would, and wait until they are projected."""
        await self.system.wait_projected(await self.system.append(*envelopes))

    async def rows(self, query: Any) -> list[Any]:
        return await self.rows_of(self.system, query)

    @staticmethod
    async def rows_of(system: System, query: Any) -> list[Any]:
        engine = make_engine(system.db_url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(query)).all())
        finally:
            await engine.dispose()

    async def table(self, table: Any) -> list[Any]:
        return await self.rows(select(table))

    @contextlib.asynccontextmanager
    async def served(self) -> AsyncIterator[str]:
        """This API on a real loopback port (its base URL), for a client in another process."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(self.transport.app, lifespan="off", ws="none", log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            await serving
            sock.close()

    def anonymous(self) -> httpx.AsyncClient:
        """A client without the key (close it, e.g. ``async with api.anonymous() as c``)."""
        return httpx.AsyncClient(
            transport=self.transport, base_url=self.client.base_url, event_hooks=self.client.event_hooks
        )


MakeApi = Callable[..., contextlib.AbstractAsyncContextManager[Api]]


@pytest.fixture
def make_api(kafka_bootstrap: str, topics: Topics, db_url: str, tmp_path: Path) -> MakeApi:
    @contextlib.asynccontextmanager
    async def make(
        services: tuple[str, ...] = ("projector",), bootstrap: bool = True, **overrides: Any
    ) -> AsyncIterator[Api]:
        """``bootstrap=False`` leaves the key table empty and the client without a key.

        The app is configured with ``TEST_BOOTSTRAP_TOKEN``; the first key is an admin key."""
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "secret_key": SecretStr(TEST_SECRET_KEY.decode()),
            "bootstrap_token": SecretStr(TEST_BOOTSTRAP_TOKEN),
            "write_timeout_seconds": 20.0,
            **overrides,
        }
        settings = Settings(**values)
        async with running_system(kafka_bootstrap, topics, db_url, services=services) as system:
            app = create_app(settings, topics=topics, bootstrap=kafka_bootstrap, db_url=db_url)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                hooks = {"response": [_never_the_token]}
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://kaizen", timeout=60, event_hooks=hooks
                ) as client:
                    key = ""
                    if bootstrap:
                        response = await client.post(
                            "/api/v1/keys/bootstrap", json={"name": "tests"}, headers=BOOTSTRAP_HEADER
                        )
                        assert response.status_code == 201, response.text
                        key = client.headers["X-API-Key"] = response.json()["key"]
                    yield Api(client, transport, system, settings, key)

    return make


@pytest.fixture
async def api(make_api: MakeApi) -> AsyncIterator[Api]:
    async with make_api() as running:
        yield running


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 7807 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_MEMBERS, body
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    return body


async def read_log(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value of ``topic`` so far (to check what really went into the log)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=500)).items():
                values.extend(r.value for r in records if r.value is not None)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return values
    finally:
        await consumer.stop()


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A fresh read model (SQLite, then PostgreSQL) with its schema, disposed after the test."""
    engine = make_engine(db_url)
    await create_schema(engine)
    yield engine
    await engine.dispose()
