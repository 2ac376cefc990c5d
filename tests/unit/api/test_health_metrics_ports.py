"""``/health`` lists each worker service's metrics port (issue 13, item 4), for keys that see detail.

Kafka is a closed port, so the answer is a 503 whose ``health`` holds the detail; the
listing is the same in a 200.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.api.main import create_app
from shared.settings import Settings
from tests.unit.api.test_health_endpoints import closed_port, new_key, until_known_down

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    settings = Settings(
        home=tmp_path,
        metrics_host="0.0.0.0",
        metrics_port_projector=19464,
        metrics_port_optimizer=0,
        metrics_port_pr_publisher=19466,
        metrics_port_webhooks=19467,
    )
    app = create_app(settings, bootstrap=f"127.0.0.1:{closed_port()}", db_url=db_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        await until_known_down(app)
        yield client, db_url


async def test_a_read_key_sees_every_worker_services_metrics_port(
    started: tuple[httpx.AsyncClient, str],
) -> None:
    client, db_url = started
    read = await new_key(db_url, "read")

    health = (await client.get("/health", headers={"X-API-Key": read})).json()["health"]

    assert health["metrics"] == [
        {"service": "projector", "host": "0.0.0.0", "port": 19464, "path": "/metrics"},
        {"service": "optimizer", "host": "0.0.0.0", "port": None, "path": "/metrics"},  # 0: off
        {"service": "pr_publisher", "host": "0.0.0.0", "port": 19466, "path": "/metrics"},
        {"service": "webhooks", "host": "0.0.0.0", "port": 19467, "path": "/metrics"},
    ]


async def test_without_a_detail_key_the_ports_are_not_shown(started: tuple[httpx.AsyncClient, str]) -> None:
    client, db_url = started
    ingest = await new_key(db_url, "ingest")

    for headers in ({}, {"X-API-Key": ingest}):
        body = (await client.get("/health", headers=headers)).json()
        assert body["health"] == {"status": "degraded"}


async def test_the_ports_are_documented_in_the_openapi_schema(started: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = started
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]

    assert "metrics" in schemas["HealthResponse"]["properties"]
    assert set(schemas["MetricsEndpoint"]["properties"]) == {"service", "host", "port", "path"}
