"""``/health``: Kafka reachable, the projector's lag, heartbeats; 503 when Kafka is not."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from services.api.main import create_app
from shared.events.topics import Topics
from shared.settings import Settings
from tests.integration.api.conftest import Api, assert_problem
from tests.support.system import BOOTSTRAP_HEADER, TEST_BOOTSTRAP_TOKEN, TEST_SECRET_KEY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_health_reports_kafka_lag_and_the_projector_heartbeat(api: Api) -> None:
    async with api.anonymous() as anonymous:
        assert (await anonymous.get("/health")).json() in ({"status": "ok"}, {"status": "degraded"})
    for _ in range(100):
        health = (await api.client.get("/health")).json()
        if any(s["service"] == "projector" for s in health["services"]) and health["projector"]["lag"] == 0:
            break
        await asyncio.sleep(0.1)
    assert health["status"] == "ok" and health["kafka"] == {"reachable": True, "error": None}
    assert health["database"] is True and health["warnings"] == []
    topics = {p["topic"] for p in health["projector"]["partitions"]}
    assert topics == {api.system.topics.keys, api.system.topics.tasks}
    keys_partition = next(
        p for p in health["projector"]["partitions"] if p["topic"] == api.system.topics.keys
    )
    assert keys_partition["end_offset"] == keys_partition["projected_offset"] >= 1
    projector = next(s for s in health["services"] if s["service"] == "projector")
    assert projector["alive"] is True and projector["last_heartbeat"].endswith("Z")
    # Every loop reports through the heartbeat; none is stuck in a healthy system.
    assert {loop["name"] for loop in projector["loops"]} == {"project", "heartbeat"}
    assert not any(loop["stuck"] for loop in projector["loops"])
    assert [loop["name"] for loop in health["loops"]] == ["broker-watch"]
    async with api.anonymous() as anonymous:
        assert (await anonymous.get("/livez")).json() == {"status": "ok"}
        for _ in range(100):  # the key feed catches up in the background
            if (ready := await anonymous.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert ready.json() == {"status": "ok"}


async def test_with_kafka_down_the_api_starts_reads_work_and_writes_are_503(
    db_url: str, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        home=tmp_path,
        secret_key=SecretStr(TEST_SECRET_KEY.decode()),
        bootstrap_token=SecretStr(TEST_BOOTSTRAP_TOKEN),
        write_timeout_seconds=5,
    )
    app = create_app(settings, topics=Topics("down"), bootstrap=closed, db_url=db_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kaizen") as client,
    ):
        health = assert_problem(await client.get("/health"), 503)
        assert health["health"] == {"status": "degraded"}  # no key: no broker error, no host name
        refused = await client.post("/api/v1/keys/bootstrap", headers=BOOTSTRAP_HEADER)
        assert assert_problem(refused, 503)["detail"] == "Kafka is unavailable; nothing was written; retry"
        assert_problem(await client.get("/api/v1/jobs"), 401)
