"""The OpenAPI document as clients see the API: every error is application/problem+json.

FastAPI describes its own 422 with ``HTTPValidationError``; the API never sends that
shape, so every 4xx/5xx response is rewritten to the problem schemas here (a route that
declares a problem model of its own for a status keeps it). Parameters never offer
``null``: one is left out to mean "none", since a query or header cannot carry a null.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.api import limits
from services.api.problems import PROBLEM_JSON
from services.api.schemas.common import PROBLEM_DESCRIPTIONS, Problem, ValidationProblem, without_null

_REF = "#/components/schemas/{model}"
#: The shapes FastAPI documents by default and the API never sends.
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _build(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, ValidationProblem):
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for name in _FASTAPI_ERRORS:
        schemas.pop(name, None)
    limits.document(app, document)
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = without_null(parameter["schema"])
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    _as_problem(int(status), response)
    return document


def _as_problem(status: int, response: dict[str, Any]) -> None:
    declared = response.get("content", {}).get("application/json", {}).get("schema") or {}
    if declared.get("$ref", _FASTAPI_ERRORS[0]).rpartition("/")[2] not in _FASTAPI_ERRORS:
        # The route's own problem model (``responses={422: {"model": ...}}``), as problem+json.
        response["content"] = {PROBLEM_JSON: {"schema": declared}}
        return
    model = ValidationProblem if status == 422 else Problem
    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model=model.__name__)}}}
    if status == 422 or response.get("description") in ("Validation Error", "", None):
        response["description"] = PROBLEM_DESCRIPTIONS.get(status, "Problem")
