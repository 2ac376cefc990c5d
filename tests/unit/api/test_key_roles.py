"""Key roles without a broker: every route declares one, the ring folds roles and the
last-admin rule, and bootstrap over HTTP opens only with the operator's token."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr, ValidationError

from services.api.deps import RoleCheck
from services.api.keyring import KeyRing, new_key_event
from services.api.main import create_app
from services.api.security import hash_key
from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.keys import ApiKeyCreated, ApiKeyRevoked, KeyRole
from shared.settings import Settings
from tests.support.system import BOOTSTRAP_HEADER, TEST_BOOTSTRAP_TOKEN

INGEST_ROUTES = {
    ("POST", "/api/v1/feedback"),
    ("POST", "/api/v1/feedback/batch"),
    ("POST", "/api/v1/tasks/{task_id}/seed"),
}
#: Keys and webhook subscriptions are managed by admins only, their listings included.
ADMIN_GETS = {
    ("GET", "/api/v1/keys"),
    ("GET", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks/{webhook_id}"),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"),
}
UNAUTHENTICATED = {("POST", "/api/v1/keys/bootstrap")}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _app(tmp_path: Path, **settings: object) -> FastAPI:
    values = {"home": tmp_path, "write_timeout_seconds": 2, **settings}
    return create_app(
        Settings(**values),  # type: ignore[arg-type]
        bootstrap=f"127.0.0.1:{_closed_port()}",
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}",
    )


def _roles(dependant: Dependant) -> list[KeyRole]:
    found: list[KeyRole] = []
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RoleCheck):
            found.append(dependency.call.role)
        found += _roles(dependency)
    return found


def _api_routes(app: FastAPI) -> dict[tuple[str, str], list[KeyRole]]:
    routes = {}
    for route in iter_route_contexts(app.routes):
        if route.path and route.path.startswith("/api/v1") and route.methods:
            for method in route.methods - {"HEAD"}:
                routes[(method, route.path)] = _roles(route.dependant)
    return routes


def _expected_role(method: str, path: str) -> KeyRole:
    if (method, path) in INGEST_ROUTES:
        return "ingest"
    if method == "GET" and (method, path) not in ADMIN_GETS:
        return "read"
    return "admin"


def test_every_api_route_declares_exactly_its_one_role(tmp_path: Path) -> None:
    routes = _api_routes(_app(tmp_path))
    assert len(routes) > 20 and set(routes) >= INGEST_ROUTES
    # Pricing a job starts nothing: a read key (a dashboard) may ask; starting it needs admin.
    assert routes[("GET", "/api/v1/optimize/{task_id}/estimate")] == ["read"]
    assert routes[("POST", "/api/v1/optimize/{task_id}")] == ["admin"]
    for (method, path), roles in routes.items():
        if (method, path) in UNAUTHENTICATED:
            assert roles == [], f"{method} {path} must stay open to the bootstrap token"
        else:
            assert roles == [_expected_role(method, path)], f"{method} {path} declares {roles}"


def test_every_authenticated_route_documents_its_403(tmp_path: Path) -> None:
    paths = _app(tmp_path).openapi()["paths"]
    for (method, path), roles in _api_routes(_app(tmp_path)).items():
        if roles:
            assert "403" in paths[path][method.lower()]["responses"], f"{method} {path}"


# --- the key ring ------------------------------------------------------------------------


def _created(role: KeyRole, bootstrap: bool = False) -> tuple[str, Envelope]:
    key, event = new_key_event("k", role, bootstrap=bootstrap)
    return key, Envelope.wrap(event, source="api")


def _revoked(of: Envelope, keep_last_admin: bool = True) -> Envelope:
    assert isinstance(of.data, ApiKeyCreated)
    return Envelope.wrap(ApiKeyRevoked(key_id=of.data.key_id, keep_last_admin=keep_last_admin), source="api")


def test_a_key_event_from_before_roles_decodes_as_an_admin_key() -> None:
    _, envelope = _created("read")
    raw = codec.encode(envelope).replace(b',"role":"read"', b"")
    assert b'"role"' not in raw
    old = codec.decode(raw)
    assert isinstance(old.data, ApiKeyCreated) and old.data.role == "admin"


def test_the_ring_holds_each_keys_role() -> None:
    ring = KeyRing()
    for role in ("ingest", "read", "admin"):
        key, envelope = _created(role)
        ring.apply(envelope)
        record = ring.active(hash_key(key))
        assert record is not None and record.role == role


def test_the_last_active_admin_key_survives_a_guarded_revocation() -> None:
    ring = KeyRing()
    admin, admin_created = _created("admin")
    reader, reader_created = _created("read")
    for envelope in (admin_created, reader_created, _revoked(admin_created)):
        ring.apply(envelope)
    assert ring.active(hash_key(admin)) is not None
    ring.apply(_revoked(reader_created))
    assert ring.active(hash_key(reader)) is None


def test_of_two_admin_keys_revoked_at_once_the_second_revocation_is_refused() -> None:
    ring = KeyRing()
    (first, first_created), (second, second_created) = _created("admin"), _created("admin")
    for envelope in (first_created, second_created, _revoked(first_created), _revoked(second_created)):
        ring.apply(envelope)
    assert ring.active(hash_key(first)) is None
    assert ring.active(hash_key(second)) is not None
    assert ring.active_admins() == 1


def test_a_revocation_written_before_the_rule_still_applies_on_replay() -> None:
    ring = KeyRing()
    key, created = _created("admin")
    ring.apply(created)
    ring.apply(_revoked(created, keep_last_admin=False))
    assert ring.active(hash_key(key)) is None


# --- settings ------------------------------------------------------------------------------


def test_a_short_bootstrap_token_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(bootstrap_token=SecretStr("short"))


def test_an_empty_bootstrap_token_means_none() -> None:
    assert Settings(bootstrap_token=SecretStr("")).resolved_bootstrap_token is None


def test_the_bootstrap_token_file_is_read_and_reread(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TEST_BOOTSTRAP_TOKEN + "\n")
    settings = Settings(bootstrap_token_file=path)
    assert settings.resolved_bootstrap_token == TEST_BOOTSTRAP_TOKEN
    path.write_text("rotated-token-0123456789")
    assert settings.resolved_bootstrap_token == "rotated-token-0123456789"


def test_a_missing_bootstrap_token_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        Settings(bootstrap_token_file=tmp_path / "absent")


# --- bootstrap over HTTP (Kafka down: every answer below is decided before any write) ---------


ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[ClientFactory]:
    """An API whose Kafka is down, configured with ``settings``, and a client without a key."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**settings: object) -> httpx.AsyncClient:
            app = _app(tmp_path / uuid.uuid4().hex, **settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://k")
            )

        yield make


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    return body


async def test_without_a_configured_token_bootstrap_is_403_and_says_how_to_get_a_key(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    body = _problem(await client.post("/api/v1/keys/bootstrap", headers=BOOTSTRAP_HEADER), 403)
    assert body["type"] == "urn:kaizen:problem:bootstrap-disabled"
    assert "kaizen keys bootstrap" in str(body["detail"]) and "KAIZEN_BOOTSTRAP_TOKEN" in str(body["detail"])


async def test_a_missing_or_wrong_bootstrap_token_is_403(make_client: ClientFactory) -> None:
    client = await make_client(bootstrap_token=SecretStr(TEST_BOOTSTRAP_TOKEN))
    wrong = {"X-Bootstrap-Token": TEST_BOOTSTRAP_TOKEN[:-1] + "X"}
    for headers in ({}, wrong, {"X-Bootstrap-Token": ""}):
        body = _problem(await client.post("/api/v1/keys/bootstrap", headers=headers), 403)
        assert body["type"] == "urn:kaizen:problem:bootstrap-token"


@pytest.mark.parametrize("source", ["env", "file"])
async def test_the_right_bootstrap_token_opens_the_door(
    make_client: ClientFactory, tmp_path: Path, source: str
) -> None:
    if source == "env":
        client = await make_client(bootstrap_token=SecretStr(TEST_BOOTSTRAP_TOKEN))
    else:
        (tmp_path / "token").write_text(TEST_BOOTSTRAP_TOKEN)
        client = await make_client(bootstrap_token_file=tmp_path / "token")
    # Past the token and the "any key?" check, the write itself fails: Kafka is down.
    _problem(await client.post("/api/v1/keys/bootstrap", headers=BOOTSTRAP_HEADER), 503)


async def test_bootstrap_takes_no_role_it_is_always_admin(make_client: ClientFactory) -> None:
    client = await make_client(bootstrap_token=SecretStr(TEST_BOOTSTRAP_TOKEN))
    body = {"name": "first", "role": "read"}
    response = await client.post("/api/v1/keys/bootstrap", json=body, headers=BOOTSTRAP_HEADER)
    _problem(response, 422)
