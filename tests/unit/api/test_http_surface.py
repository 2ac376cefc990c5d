"""The HTTP surface without a broker: problem+json everywhere, auth, validation, 503s.

Kafka is a closed port here, so every write must answer 503 while reads still work. The
read model is a fresh SQLite file with one key inserted directly (the projector's job).
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
from pydantic import SecretStr

from services.api.main import create_app
from services.api.pagination import CURSOR_PATTERN, MAX_OFFSET
from services.api.schemas.tasks import NOT_NULLABLE
from services.api.security import hash_key, key_prefix, new_api_key
from shared.readmodel.db import make_engine
from shared.readmodel.tables import api_keys
from shared.settings import Settings
from tests.support.system import BOOTSTRAP_HEADER, TEST_BOOTSTRAP_TOKEN

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(
        home=tmp_path, write_timeout_seconds=2, bootstrap_token=SecretStr(TEST_BOOTSTRAP_TOKEN)
    )
    application = create_app(
        settings, bootstrap=f"127.0.0.1:{closed_port()}", db_url=f"sqlite+aiosqlite:///{tmp_path / 'rm.db'}"
    )

    @application.get("/boom")
    async def boom() -> None:
        raise RuntimeError("internal detail that must stay in the log")

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


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert set(body) >= PROBLEM_MEMBERS
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    return body


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nothing-here"), 404)


async def test_wrong_method_is_a_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/health")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


async def test_missing_and_invalid_keys_have_their_own_titles(client: httpx.AsyncClient) -> None:
    assert assert_problem(await client.get("/api/v1/jobs"), 401)["title"] == "Missing API key"
    for bad in ("nope", new_api_key()):
        response = await client.get("/api/v1/jobs", headers={"X-API-Key": bad})
        assert assert_problem(response, 401)["title"] == "Invalid or revoked API key"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit: must be at least 1"),
        ("limit=201", "limit: must be at most 200"),
        ("offset=-1", "offset: must be at least 0"),
        ("task_id=not-a-uuid", "task_id: must be a UUID"),
        ("limit=ten", "limit: must be an integer"),
    ],
)
async def test_bad_query_parameters_are_422_in_plain_words(
    client: httpx.AsyncClient, key: str, query: str, message: str
) -> None:
    body = assert_problem(await client.get(f"/api/v1/jobs?{query}", headers={"X-API-Key": key}), 422)
    assert body["detail"] == message
    field, rule = message.split(": ", 1)
    assert body["errors"] == [{"field": field, "message": rule}]


async def test_malformed_path_ids_are_422(client: httpx.AsyncClient, key: str) -> None:
    body = assert_problem(await client.get("/api/v1/jobs/123", headers={"X-API-Key": key}), 422)
    assert body["detail"] == "job_id: must be a UUID"


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(
        "/api/v1/tasks", content=b"{nope", headers={"X-API-Key": key, "content-type": "application/json"}
    )
    assert assert_problem(response, 422)["errors"][0]["message"] == "is not valid JSON"  # type: ignore[index]


async def test_unknown_task_fields_are_named(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(
        "/api/v1/tasks", json={"name": "t", "colour": "red"}, headers={"X-API-Key": key}
    )
    assert assert_problem(response, 422)["detail"] == "colour: is not a known field"


async def test_auto_pr_without_git_settings_names_each_missing_field(
    client: httpx.AsyncClient, key: str
) -> None:
    response = await client.post(
        "/api/v1/tasks",
        json={"name": "t", "mode": "auto_pr", "git_provider": "github"},
        headers={"X-API-Key": key},
    )
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["git_repo", "git_token", "prompt_path"]  # type: ignore[attr-defined]


async def test_unexpected_errors_are_500_problems_without_traceback(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    body = assert_problem(response, 500)
    assert "internal detail" not in response.text and "Traceback" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


async def test_writes_answer_503_while_kafka_is_down_and_reads_still_work(
    client: httpx.AsyncClient, key: str
) -> None:
    headers = {"X-API-Key": key}
    response = await client.post("/api/v1/keys", json={"name": "ci", "role": "read"}, headers=headers)
    assert assert_problem(response, 503)["detail"] == "Kafka is unavailable; nothing was written; retry"
    response = await client.post(
        "/api/v1/tasks", json={"name": "t", "git_token": "ghp_s3cret"}, headers=headers
    )
    assert_problem(response, 503)
    assert "ghp_s3cret" not in response.text
    # A key exists: decided before Kafka.
    assert_problem(await client.post("/api/v1/keys/bootstrap", headers=BOOTSTRAP_HEADER), 403)
    assert (await client.get("/api/v1/jobs", headers=headers)).json() == []


async def test_bootstrap_answers_503_while_kafka_is_down(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/keys/bootstrap", json={"name": "first"}, headers=BOOTSTRAP_HEADER)
    assert_problem(response, 503)


async def test_health_is_a_503_problem_naming_kafka(client: httpx.AsyncClient, key: str) -> None:
    body = assert_problem(await client.get("/health", headers={"X-API-Key": key}), 503)
    health = body["health"]
    assert isinstance(health, dict)
    assert (
        health["status"] == "degraded"
        and health["kafka"]["reachable"] is False
        and health["database"] is True
    )


async def test_openapi_documents_problems_and_the_seed_example(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    jobs = document["paths"]["/api/v1/jobs"]["get"]
    assert set(jobs["responses"]["422"]["content"]) == {"application/problem+json"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    example = document["components"]["schemas"]["JobResponse"]["examples"][0]
    assert example["job_metadata"]["train_size"] == 41 and example["created_at"] == "2024-01-15T10:29:55Z"
    assert (await client.get("/docs")).status_code == 200


async def test_a_request_too_large_for_one_record_is_413_not_503(client: httpx.AsyncClient, key: str) -> None:
    # Under the 1 MiB body limit (that 413 comes first), over the broker's 1 000 000 bytes.
    body = {"name": "big", "description": "x" * 1_000_000}
    response = await client.post("/api/v1/tasks", json=body, headers={"X-API-Key": key})
    assert "at most 1000000" in assert_problem(response, 413)["detail"]  # type: ignore[operator]


# --- The OpenAPI document says what the API checks (tests/integration/api/test_openapi_fuzz.py) ---


@pytest.mark.parametrize(
    "path", ["/api/v1/jobs", "/api/v1/feedback", f"/api/v1/prompts/{uuid.uuid4()}/versions"]
)
async def test_an_offset_beyond_64_bits_is_422_not_500(
    client: httpx.AsyncClient, key: str, path: str
) -> None:
    response = await client.get(path, params={"offset": MAX_OFFSET + 1}, headers={"X-API-Key": key})
    assert assert_problem(response, 422)["detail"] == f"offset: must be at most {MAX_OFFSET}"


async def test_a_405_allows_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    for method, path, allow in (
        ("OPTIONS", "/api/v1/tasks", "GET, POST"),
        ("PUT", f"/api/v1/tasks/{uuid.uuid4()}", "DELETE, GET, PATCH"),
        ("OPTIONS", "/api/v1/feedback", "GET, POST"),
    ):
        response = await client.request(method, path)
        assert_problem(response, 405)
        assert response.headers["allow"] == allow


async def test_a_concrete_path_is_never_taken_for_an_id(client: httpx.AsyncClient, key: str) -> None:
    response = await client.delete("/api/v1/keys/bootstrap", headers={"X-API-Key": key})
    assert assert_problem(response, 405)["detail"] == "DELETE is not allowed on /api/v1/keys/bootstrap"
    assert response.headers["allow"] == "POST"
    malformed = await client.delete("/api/v1/keys/nope", headers={"X-API-Key": key})
    assert assert_problem(malformed, 422)["detail"] == "key_id: must be a UUID"


async def test_a_body_that_is_not_utf8_is_422_like_any_malformed_json(
    client: httpx.AsyncClient, key: str
) -> None:
    headers = {"X-API-Key": key, "content-type": "application/json"}
    response = await client.post("/api/v1/tasks", content=b'{"name": "\xff"}', headers=headers)
    assert assert_problem(response, 422)["errors"] == [
        {"field": "body", "message": "is not valid JSON (not UTF-8)"}
    ]


async def test_an_empty_cursor_is_refused_like_any_malformed_one(client: httpx.AsyncClient, key: str) -> None:
    response = await client.get("/api/v1/tasks", params={"cursor": ""}, headers={"X-API-Key": key})
    assert assert_problem(response, 422)["detail"] == "cursor: is not a cursor returned by this API"


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [operation for item in document["paths"].values() for operation in item.values()]


async def test_the_openapi_document_states_the_rules_the_api_checks(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    for operation in _operations(document):
        for parameter in operation.get("parameters", []):
            assert "null" not in json.dumps(parameter["schema"]), parameter  # absent means none
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert set(response["content"]) == {"application/problem+json"}, (operation, status)
    jobs = {p["name"]: p["schema"] for p in document["paths"]["/api/v1/jobs"]["get"]["parameters"]}
    assert jobs["offset"]["maximum"] == MAX_OFFSET and jobs["limit"]["maximum"] == 200
    tasks = {p["name"]: p["schema"] for p in document["paths"]["/api/v1/tasks"]["get"]["parameters"]}
    assert tasks["cursor"]["pattern"] == CURSOR_PATTERN
    update = document["components"]["schemas"]["TaskUpdate"]["properties"]
    assert all("anyOf" not in update[name] for name in NOT_NULLABLE)
    assert "anyOf" in update["description"]  # an optional setting may still be cleared with null
    seed_422 = document["paths"]["/api/v1/tasks/{task_id}/seed"]["post"]["responses"]["422"]
    assert seed_422["content"]["application/problem+json"]["schema"]["$ref"].endswith("/SeedsRejected")
    assert {} in document["paths"]["/health"]["get"]["security"]  # the key is optional there
