"""Keys checked from memory, kept current by the keys topic, in one API process and across two."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import Engine

from services.api.deps import ApiContext
from services.api.main import create_app
from shared.events.topics import Topics
from tests.integration.api.conftest import Api, assert_problem

FEED_LAG_SECONDS = 5.0  # generous: the feed's lag is milliseconds; the machine is shared


def context_of(app: Any) -> ApiContext:
    context: ApiContext = app.state.kaizen
    return context


async def until_serving(app: Any) -> None:
    """Wait until the app's key feed has caught up with the keys topic."""
    async with asyncio.timeout(30):
        while not context_of(app).keys.serving:
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def second_process(api: Api, kafka_bootstrap: str, topics: Topics, db_url: str) -> AsyncIterator[Any]:
    """Another API process on the same log and read model: (its app, a client with no key)."""
    app = create_app(api.settings, topics=topics, bootstrap=kafka_bootstrap, db_url=db_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://other") as client,
    ):
        yield app, client


async def test_once_the_feed_caught_up_keys_are_checked_without_querying_the_read_model(api: Api) -> None:
    app: FastAPI = api.transport.app  # type: ignore[assignment]
    await until_serving(app)
    statements: list[str] = []
    # Every engine: on a SQLite file the route reads through the read runner's own engine.
    engine = Engine

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert (await api.client.get("/api/v1/jobs")).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements and not any("api_keys" in s for s in statements)


async def test_a_key_revoked_here_is_refused_as_soon_as_the_revoke_returns(api: Api) -> None:
    await until_serving(api.transport.app)
    created = (await api.client.post("/api/v1/keys", json={"name": "temp", "role": "read"})).json()
    headers = {"X-API-Key": created["key"]}
    assert (await api.client.get("/api/v1/jobs", headers=headers)).status_code == 200
    assert (await api.client.delete(f"/api/v1/keys/{created['id']}")).status_code == 204
    assert_problem(await api.client.get("/api/v1/jobs", headers=headers), 401)


async def test_a_key_revoked_through_another_process_is_refused_within_the_feeds_lag(
    api: Api, kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    created = (await api.client.post("/api/v1/keys", json={"name": "temp", "role": "read"})).json()
    headers = {"X-API-Key": created["key"]}
    async with second_process(api, kafka_bootstrap, topics, db_url) as (other_app, other):
        await until_serving(other_app)
        assert (await other.get("/api/v1/jobs", headers=headers)).status_code == 200
        assert (await api.client.delete(f"/api/v1/keys/{created['id']}")).status_code == 204
        async with asyncio.timeout(FEED_LAG_SECONDS):
            while (await other.get("/api/v1/jobs", headers=headers)).status_code != 401:
                await asyncio.sleep(0.01)


async def test_a_key_created_through_another_process_is_accepted_at_once(
    api: Api, kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    async with second_process(api, kafka_bootstrap, topics, db_url) as (other_app, other):
        await until_serving(other_app)
        created = (await api.client.post("/api/v1/keys", json={"name": "new", "role": "read"})).json()
        # The other feed may not have read it yet; the read model, which the write waited for, has.
        response = await other.get("/api/v1/jobs", headers={"X-API-Key": created["key"]})
        assert response.status_code == 200
