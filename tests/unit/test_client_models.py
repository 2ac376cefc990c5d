"""The Python client (``clients/python``) against the server's OpenAPI document: a drift fails here.

Every path and method of the API is an endpoint of the client, with the same body,
answer and parameters; every schema of the document is a client model with the same
field names and the same required fields.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from services.api.main import create_app
from shared.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[2] / "clients" / "python"))

from kaizen_client import models
from kaizen_client.endpoints import ENDPOINTS, Endpoint

#: Schemas that are no model of their own: FastAPI's multipart body (the client sends a file).
NOT_MODELS = {"Body_upload_seeds_api_v1_tasks__task_id__seed_post"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("home")
    app = create_app(
        Settings(home=home), bootstrap="127.0.0.1:9", db_url=f"sqlite+aiosqlite:///{home / 'rm.db'}"
    )
    return app.openapi()


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def _by_route() -> dict[tuple[str, str], Endpoint]:
    return {(e.method, e.path): e for e in ENDPOINTS.values()}


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rpartition("/")[2] if ref else None


def test_every_path_and_method_of_the_api_is_an_endpoint_of_the_client(document: dict[str, Any]) -> None:
    assert set(_by_route()) == set(_operations(document))


def test_each_endpoint_sends_the_body_and_the_parameters_the_api_declares(document: dict[str, Any]) -> None:
    endpoints = _by_route()
    for route, operation in _operations(document).items():
        endpoint = endpoints[route]
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] in ("query", "header")}
        assert set(endpoint.params) == declared, route
        content = operation.get("requestBody", {}).get("content", {})
        assert endpoint.upload == ("multipart/form-data" in content), route
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            assert endpoint.body is None, route
            continue
        assert endpoint.body is not None, route
        name = _ref_name(schema)
        if name is not None:
            assert endpoint.body.__name__ == name, route
        else:  # an inline body (``Body(embed=...)`` or an optional model): compare its fields
            inline = next((s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"), schema)
            target = _ref_name(inline)
            if target is not None:
                assert endpoint.body.__name__ == target, route
            else:
                assert set(inline.get("properties", {})) == _fields(endpoint.body), route


def test_each_endpoint_reads_the_answer_the_api_declares(document: dict[str, Any]) -> None:
    endpoints = _by_route()
    for route, operation in _operations(document).items():
        endpoint = endpoints[route]
        success = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        schemas = [r.get("content", {}).get("application/json", {}).get("schema") for r in success.values()]
        schema = next((s for s in schemas if s), None)
        if schema is None:
            assert endpoint.answer is None, route
            continue
        assert endpoint.answer is not None, route
        if schema.get("type") == "array":
            assert endpoint.many, route
            schema = schema["items"]
        else:
            assert not endpoint.many, route
        names = {_ref_name(s) for s in schema.get("anyOf", [schema])}
        assert endpoint.answer.__name__ in names, route


def _fields(model: type[BaseModel]) -> set[str]:
    """The model's field names on the wire."""
    return {field.alias or name for name, field in model.model_fields.items()}


def _required(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items() if field.is_required()}


def test_every_schema_of_the_api_is_a_client_model_with_the_same_fields(document: dict[str, Any]) -> None:
    for name, schema in document["components"]["schemas"].items():
        if name in NOT_MODELS:
            continue
        model = getattr(models, name, None)
        assert isinstance(model, type) and issubclass(model, BaseModel), f"the client has no model {name}"
        assert _fields(model) == set(schema.get("properties", {})), name
        assert _required(model) == set(schema.get("required", [])), name


def test_an_answer_with_fields_the_client_does_not_know_still_parses() -> None:
    status = models.HealthStatus.model_validate({"status": "ok", "added_later": 1})
    assert status.status == "ok"
