"""Problem documents (RFC 7807) and validation errors in plain words."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from services.api.problems import ProblemError, invalid, problem_body, render
from services.api.validation import FieldError, describe, summary


def test_problem_has_the_five_members_and_extensions_cannot_override_them() -> None:
    body = problem_body(
        404, "job x not found", "/api/v1/jobs/x", extensions={"status": 200, "request_id": "r"}
    )
    assert body == {
        "type": "urn:kaizen:problem:not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "job x not found",
        "instance": "/api/v1/jobs/x",
        "request_id": "r",
    }


def test_rendered_problem_is_problem_json_with_headers() -> None:
    error = ProblemError(
        401, "send a key", title="Missing API key", headers={"WWW-Authenticate": "X-API-Key"}
    )
    response = render(error, "/api/v1/jobs", "rid")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "X-API-Key"
    assert json.loads(bytes(response.body))["title"] == "Missing API key"


def test_invalid_lists_every_field_and_summarises_them() -> None:
    error = invalid(
        [FieldError(field="git_repo", message="is required"), FieldError(field="limit", message="x")]
    )
    assert error.status == 422
    assert error.detail == "git_repo: is required; limit: x"
    assert error.extensions["errors"][0] == {"field": "git_repo", "message": "is required"}


class _Query(BaseModel):
    limit: int = Field(50, ge=1, le=200)
    name: str = Field("x", min_length=1, max_length=3)
    fields: list[str] | dict[str, Any] | None = None
    token: str | None = None


def _errors(**values: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        _Query.model_validate(values)
    return [str(e) for e in describe(caught.value.errors())]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"limit": 201}, "limit: must be at most 200"),
        ({"limit": 0}, "limit: must be at least 1"),
        ({"limit": "ten"}, "limit: must be an integer"),
        ({"name": ""}, "name: must not be empty"),
        ({"name": "abcd"}, "name: must be at most 3 characters long"),
        ({"fields": 5}, "fields: must be a list or must be an object"),
    ],
)
def test_validation_errors_read_as_plain_words(values: dict[str, Any], expected: str) -> None:
    assert _errors(**values) == [expected]


def test_rejected_values_never_appear_in_messages() -> None:
    messages = _errors(token=["ghp_secret_value"])
    assert messages == ["token: must be a string"]


def test_location_prefixes_are_dropped() -> None:
    errors = describe(
        [
            {"type": "uuid_parsing", "loc": ("query", "task_id"), "msg": "x"},
            {"type": "missing", "loc": ("body",), "msg": "x"},
            {"type": "extra_forbidden", "loc": ("body", "inputs", "extra"), "msg": "x"},
            {"type": "value_error", "loc": ("body", "name"), "msg": "Value error, must not be blank"},
        ]
    )
    assert summary(errors) == (
        "task_id: must be a UUID; body: is required; "
        "inputs.extra: is not a known field; name: must not be blank"
    )
