"""What the sync and async clients share: building requests, reading answers, parsing SSE.

Everything here is about *what* to send and how to read it; sending is each client's own
``httpx.Client`` or ``httpx.AsyncClient`` (``Kaizen._run``, ``AsyncKaizen._run``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import httpx
from pydantic import BaseModel

from kaizen_client import errors
from kaizen_client.endpoints import ENDPOINTS, Endpoint

USER_AGENT = "kaizen-client-python/0.1.0"

#: What a call's answer is read as; the builder in ``kaizen_client._calls`` declares it.
T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, ready for either client's ``httpx`` transport; its answer reads as ``T``."""

    endpoint: Endpoint
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    files: Any = None

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` (and of ``AsyncClient.request``)."""
        return {
            "method": self.endpoint.method,
            "url": self.url,
            "params": self.params,
            "headers": self.headers,
            "json": self.json,
            "files": self.files,
        }

    def unreachable(self, exc: httpx.HTTPError) -> errors.TransportError:
        """The error for a request that got no answer at all."""
        return errors.TransportError(f"{self.endpoint.method} {self.url}: {exc!r}")


def call(
    name: str,
    *,
    path: Mapping[str, Any] | None = None,
    body: BaseModel | None = None,
    params: Mapping[str, Any] | None = None,
    files: Any = None,
) -> Call[Any]:
    """The request for endpoint ``name``; parameters that are ``None`` are left out."""
    endpoint = ENDPOINTS[name]
    url = endpoint.path.format(**{k: str(v) for k, v in (path or {}).items()})
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if key[0].isupper():  # header names are capitalised, query names are not
            headers[key] = str(value)
        else:
            query[key] = str(value)
    document = body.model_dump(mode="json", by_alias=True, exclude_unset=True) if body is not None else None
    return Call(endpoint, url, query, headers, document, files)


def answer(call: Call[T], response: httpx.Response) -> T:
    """The answer's model (or list of models, or ``None``); a typed error for an error answer."""
    if response.status_code >= 400:
        raise errors.from_response(response)
    model = call.endpoint.answer
    if model is None or response.status_code == 204:
        return cast(T, None)
    document = response.json()
    if call.endpoint.many:
        return cast(T, [model.model_validate(item) for item in document])
    return cast(T, model.model_validate(document))


def settings(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The server's URL and the key: the arguments, else ``KAIZEN_URL`` and ``KAIZEN_API_KEY``."""
    url = base_url or os.environ.get("KAIZEN_URL") or "http://127.0.0.1:8000"
    return url.rstrip("/"), api_key or os.environ.get("KAIZEN_API_KEY")


def client_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    return headers


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


class SseParser:
    """Server-Sent Events, line by line (https://html.spec.whatwg.org/#event-stream-interpretation)."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        """The event a blank line completes; ``None`` for every other line."""
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = "message"
                return None
            done = SseEvent(self._event, "\n".join(self._data), self._id)
            self._event, self._data = "message", []
            return done
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None
