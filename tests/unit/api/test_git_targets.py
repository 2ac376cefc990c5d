"""A task's Git settings may point only at hosts in KAIZEN_GIT_HOSTS; prompt paths stay in the repo.

No broker: Kafka is a closed port, so a request the API accepts answers 503 (it tried to
append), and one it refuses answers 422 before anything is written.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.api.main import create_app
from services.api.security import hash_key, key_prefix, new_api_key
from shared.readmodel.db import make_engine
from shared.readmodel.tables import api_keys
from shared.settings import Settings

ENTERPRISE = "https://ghe.example.com"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _insert_key(db_url: str) -> str:
    value = new_api_key()
    engine = make_engine(db_url)
    async with engine.begin() as conn:
        await conn.execute(
            api_keys.insert().values(
                id=str(uuid.uuid4()),
                name="t",
                key_hash=hash_key(value),
                prefix=key_prefix(value),
                status="active",
                bootstrap=True,
                created_at=datetime.now(UTC),
            )
        )
    await engine.dispose()
    return value


async def _client(tmp_path: Path, git_hosts: str) -> AsyncIterator[httpx.AsyncClient]:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    settings = Settings(home=tmp_path, write_timeout_seconds=2, git_hosts=git_hosts)
    app = create_app(settings, bootstrap=f"127.0.0.1:{_closed_port()}", db_url=db_url)
    async with app.router.lifespan_context(app):
        headers = {"X-API-Key": await _insert_key(db_url)}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
        ) as client:
            yield client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An API whose operator trusts github.com, gitlab.com and one GitHub Enterprise host."""
    async for c in _client(tmp_path, f"https://api.github.com,https://gitlab.com,{ENTERPRISE}"):
        yield c


@pytest.fixture
async def enterprise_only(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(tmp_path, ENTERPRISE):
        yield c


def _task(**git: Any) -> dict[str, Any]:
    return {"name": f"t-{uuid.uuid4().hex[:8]}", "git_provider": "github", "git_repo": "o/r", **git}


def _refused(response: httpx.Response) -> dict[str, str]:
    """The 422's errors, by field."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {e["field"]: e["message"] for e in response.json()["errors"]}


async def test_a_base_url_outside_the_allowlist_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/tasks", json=_task(git_base_url="https://git.attacker.example", git_token="ghp_x")
    )

    message = _refused(response)["git_base_url"]
    assert "KAIZEN_GIT_HOSTS" in message and ENTERPRISE in message
    assert "ghp_x" not in response.text


async def test_plain_http_and_loopback_targets_are_refused(client: httpx.AsyncClient) -> None:
    for url, words in [
        ("http://ghe.example.com", "plain http"),
        ("http://127.0.0.1:8080", "loopback or private"),
        ("https://192.168.1.10", "loopback or private"),
        ("https://ghe.example.com@evil.example", "not a plain http(s) URL"),
    ]:
        response = await client.post("/api/v1/tasks", json=_task(git_base_url=url))
        assert words in _refused(response)["git_base_url"], url


async def test_a_provider_default_outside_the_allowlist_is_refused(
    enterprise_only: httpx.AsyncClient,
) -> None:
    response = await enterprise_only.post("/api/v1/tasks", json=_task())

    assert "github's default https://api.github.com" in _refused(response)["git_base_url"]


async def test_listed_targets_pass_validation(client: httpx.AsyncClient) -> None:
    # 503: accepted, then Kafka (a closed port here) refused the append.
    for git in ({}, {"git_base_url": f"{ENTERPRISE}/api/v3"}, {"git_provider": "gitlab"}):
        response = await client.post("/api/v1/tasks", json=_task(**git))
        assert response.status_code == 503, response.text


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "prompts\\p.txt", "./prompts/p.txt"])
async def test_a_prompt_path_outside_or_not_normalized_is_422(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post("/api/v1/tasks", json={"name": "t", "prompt_path": path})

    assert "relative path inside the repository" in _refused(response)["prompt_path"]


async def test_a_prompt_path_patch_is_checked_too(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"/api/v1/tasks/{uuid.uuid4()}", json={"prompt_path": "../x.txt"})

    assert "prompt_path" in _refused(response)
