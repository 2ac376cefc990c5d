"""Input limits at the door: 413 before anything reads a large body, 422 for text PostgreSQL refuses.

The app runs without a broker (a closed port), on a fresh SQLite read model with one key
inserted directly: both checks answer before any write would reach Kafka.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.api.limits import MULTIPART_OVERHEAD, UPLOAD_PATH, BodyLimits
from services.api.main import create_app
from services.api.security import hash_key, key_prefix, new_api_key
from services.api.seeds import MAX_FILE_BYTES, parse_seeds
from services.api.storable import may_hold_unstorable, unstorable
from shared.readmodel.db import make_engine
from shared.readmodel.tables import api_keys
from shared.settings import Settings

JSON_LIMIT = 64 * 1024
CHUNK = 16 * 1024
TASK = str(uuid.uuid4())
UNSTORABLE_MESSAGE = "must not contain a NUL character or an unpaired surrogate"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(home=tmp_path, write_timeout_seconds=2, max_body_bytes=JSON_LIMIT)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    application = create_app(settings, bootstrap=f"127.0.0.1:{_closed_port()}", db_url=db_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def key(app: FastAPI, tmp_path: Path) -> str:
    value = new_api_key()
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}")
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


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


class Stream:
    """A body streamed in chunks (no Content-Length); counts what the server pulled."""

    def __init__(self, total: int, head: bytes = b"") -> None:
        self.total = total
        self.head = head
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            yield self.head
        while self.pulled < self.total:
            self.pulled += CHUNK
            yield b"x" * CHUNK


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["instance"] == response.request.url.path
    return body


# --- body limits ------------------------------------------------------------------------


async def test_a_declared_body_over_the_limit_is_413_before_the_missing_key_is_noticed(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/feedback", content=b"{}", headers={"Content-Length": str(JSON_LIMIT + 1)}
    )
    body = _problem(response, 413)
    assert body["type"] == "urn:kaizen:problem:body-too-large"
    assert body["detail"] == "the request body is larger than 64 KiB; send less"
    assert body["limit_bytes"] == JSON_LIMIT
    assert body["request_id"] == response.headers["x-request-id"]


async def test_a_streamed_body_is_cut_off_at_the_limit_and_answered_413(client: httpx.AsyncClient) -> None:
    stream = Stream(100 * 2**20)
    response = await client.post(
        "/api/v1/feedback", content=stream, headers={"Content-Type": "application/json"}
    )
    _problem(response, 413)
    assert stream.pulled <= JSON_LIMIT + CHUNK


async def test_a_body_within_the_limit_reaches_the_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/feedback", json={"output": "y" * (JSON_LIMIT // 2)})
    _problem(response, 401)


async def test_a_seed_upload_may_be_larger_than_a_json_body(client: httpx.AsyncClient) -> None:
    files = {"file": ("seeds.jsonl", b"x" * (JSON_LIMIT * 2), "application/jsonl")}
    _problem(await client.post(f"/api/v1/tasks/{TASK}/seed", files=files), 401)


async def test_a_seed_upload_over_the_seed_file_limit_is_cut_off_at_it(client: httpx.AsyncClient) -> None:
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.jsonl"\r\n\r\n'
    stream = Stream(MAX_FILE_BYTES + 4 * 2**20, head)
    response = await client.post(
        f"/api/v1/tasks/{TASK}/seed",
        content=stream,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert _problem(response, 413)["detail"] == "the seed file is larger than 50 MiB; send less"
    assert stream.pulled <= MAX_FILE_BYTES + MULTIPART_OVERHEAD + CHUNK


def test_the_upload_limit_covers_exactly_the_routes_that_take_files(app: FastAPI) -> None:
    uploads = {
        path
        for path, operations in app.openapi()["paths"].items()
        for operation in operations.values()
        if "multipart/form-data" in operation.get("requestBody", {}).get("content", {})
    }
    assert uploads == {"/api/v1/tasks/{task_id}/seed"}
    assert {path for path in app.openapi()["paths"] if UPLOAD_PATH.match(path)} == uploads
    limits = BodyLimits(json=JSON_LIMIT)
    assert limits.for_path(f"/api/v1/tasks/{TASK}/seed") == MAX_FILE_BYTES + MULTIPART_OVERHEAD
    assert limits.for_path(f"/api/v1/tasks/{TASK}") == JSON_LIMIT


def test_every_operation_documents_its_413_with_its_limit(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            response = operation["responses"].get("413")
            assert response is not None, f"{method} {path} does not document 413"
            assert "application/problem+json" in response["content"]
    seed = paths["/api/v1/tasks/{task_id}/seed"]["post"]["responses"]["413"]["description"]
    assert "seed file is larger than 50 MiB" in seed
    assert "larger than 64 KiB" in paths["/api/v1/feedback"]["post"]["responses"]["413"]["description"]


# --- text PostgreSQL cannot store -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/feedback", {"task_id": TASK, "output": "x\u0000", "score": 1}, "output"),
        ("POST", "/api/v1/feedback", {"inputs": {"q": ["ok", "a\u0000"]}}, "inputs.q.1"),
        ("POST", "/api/v1/feedback", {"output": "\ud800"}, "output"),
        ("POST", "/api/v1/tasks", {"name": "t\u0000"}, "name"),
        ("PATCH", f"/api/v1/tasks/{TASK}", {"prompt_path": "p\u0000.txt"}, "prompt_path"),
        ("POST", "/api/v1/keys", {"name": "\u0000", "role": "read"}, "name"),
        ("POST", f"/api/v1/prompts/{TASK}", {"prompt_text": "\udfff"}, "prompt_text"),
    ],
)
async def test_unstorable_text_anywhere_in_a_body_is_422_naming_the_field(
    client: httpx.AsyncClient, key: str, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    response = await client.request(method, path, content=_json(body), headers=_json_headers(key))
    assert _problem(response, 422)["errors"] == [{"field": field, "message": UNSTORABLE_MESSAGE}]


async def test_an_object_key_with_a_nul_is_422_naming_the_object(client: httpx.AsyncClient, key: str) -> None:
    body = {"metadata": {"ok": {"k\u0000": 1}}}
    response = await client.post("/api/v1/feedback", content=_json(body), headers=_json_headers(key))
    message = "must not have a key with a NUL character or an unpaired surrogate"
    assert _problem(response, 422)["errors"] == [{"field": "metadata.ok", "message": message}]


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()  # ensure_ascii: NUL and surrogates travel as \u escapes


def _json_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key, "Content-Type": "application/json"}


async def test_bootstrapping_a_key_with_a_nul_name_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/keys/bootstrap", json={"name": "boot\u0000"})
    assert _problem(response, 422)["errors"] == [{"field": "name", "message": UNSTORABLE_MESSAGE}]


async def test_a_nul_in_a_query_parameter_is_422(client: httpx.AsyncClient, key: str) -> None:
    response = await client.get("/api/v1/tasks", params={"name": "a\u0000"}, headers={"X-API-Key": key})
    assert _problem(response, 422)["errors"] == [{"field": "name", "message": UNSTORABLE_MESSAGE}]


async def test_without_a_key_a_nul_body_is_still_401(client: httpx.AsyncClient) -> None:
    _problem(await client.post("/api/v1/feedback", json={"output": "x\u0000"}), 401)


def test_a_seed_line_with_unstorable_text_is_rejected_by_line_and_field() -> None:
    lines = [
        json.dumps({"inputs": {"q": "fine"}, "output": "ok"}),
        json.dumps({"inputs": {"q": "a\u0000"}, "output": "ok"}),
        json.dumps({"inputs": {"q": "b"}, "output": "\ud83d"}),
    ]
    parsed = parse_seeds("\n".join(lines).encode(), None, room=10, limit=10)
    assert len(parsed.seeds) == 1
    assert parsed.errors == [
        {"line": 2, "message": f"inputs.q: {UNSTORABLE_MESSAGE}"},
        {"line": 3, "message": f"output: {UNSTORABLE_MESSAGE}"},
    ]


def test_printable_text_paired_surrogates_and_other_controls_are_storable() -> None:
    assert unstorable({"a": "tab\there, emoji 😀, é, \u2028", "b": ["\x01", 1, None, 2.5]}) == []


def test_a_deeply_nested_document_is_walked_without_recursion() -> None:
    document: Any = "\x00"
    for _ in range(50_000):
        document = [document]
    [error] = unstorable(document, ("body",))
    assert error["type"] == "unstorable_text" and len(error["loc"]) == 50_001


@pytest.mark.parametrize(
    ("text", "walked"),
    [
        ("plain ascii and ü é 中文", False),
        ("nul \u0000 inside", True),  # json.dumps writes the escape \u0000
        ("a lone \ud800 surrogate", True),
        ("hangul \ud55c\uae00", True),  # raw UTF-8 led by 0xED: walked, though storable
    ],
)
def test_only_a_body_that_may_hold_unstorable_text_is_walked(text: str, walked: bool) -> None:
    body = json.dumps({"output": text}, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert may_hold_unstorable(body) is walked
    if not walked:
        assert unstorable(json.loads(body)) == []
