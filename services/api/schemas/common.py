"""Types every resource shares: UTC timestamps with ``Z`` and the problem document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from services.api.pagination import as_utc


def utc_z(value: datetime) -> str:
    """ISO 8601 in UTC with ``Z`` (``2024-01-15T10:30:00Z``); sub-seconds kept when present."""
    if value.tzinfo is None:
        # SQLite's naive times are UTC already (``as_utc``): the same text, without a
        # time zone to attach and format, on every timestamp of every answer.
        return value.isoformat() + "Z"
    return as_utc(value).isoformat().replace("+00:00", "Z")


UtcDateTime = Annotated[
    datetime,
    PlainSerializer(utc_z, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2024-01-15T10:30:00Z"]}),
]


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` no longer offering ``null``: ``anyOf [T, null]`` becomes ``T``, a null default goes.

    For what is optional by being left out, never by being null: a parameter (a client
    cannot send a null one) and a setting an update may omit but not clear.
    """
    members = schema.get("anyOf")
    if members is None:
        return schema
    kept = [member for member in members if member != {"type": "null"}]
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if rest.get("default", ...) is None:
        del rest["default"]
    return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}


class Problem(BaseModel):
    """An RFC 7807 problem: the body of every 4xx and 5xx answer."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="A URN naming the kind of problem.", examples=["urn:kaizen:problem:not-found"]
    )
    title: str = Field(description="A short summary of the kind of problem.", examples=["Not Found"])
    status: int = Field(description="The HTTP status code.", examples=[404])
    detail: str = Field(
        description="What went wrong this time, for a person.", examples=["job f1e2… not found"]
    )
    instance: str = Field(
        description="The request path.", examples=["/api/v1/jobs/f1e2d3c4-b5a6-7890-fedc-ba0987654321"]
    )


class FieldErrorOut(BaseModel):
    field: str = Field(examples=["limit"])
    message: str = Field(examples=["must be at most 200"])


class ValidationProblem(Problem):
    """A 422: every field that broke a rule, in plain words."""

    errors: list[FieldErrorOut]


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route's problem statuses (``openapi.py`` adds the problem schema)."""
    return {status: {"description": PROBLEM_DESCRIPTIONS.get(status, "Problem")} for status in statuses}


PROBLEM_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid API key",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Too large: the file, or the event the request would append",
    422: "A field broke a rule (each one is listed in `errors`)",
    502: "The Git provider refused again (reason in `detail`)",
    503: "Kafka is unavailable; nothing was written",
    504: "Durable in the log but not yet visible (or not yet decided); retry the GET",
}
