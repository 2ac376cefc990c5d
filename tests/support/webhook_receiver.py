"""A webhook receiver for tests: verifies each delivery with the snippet of ``docs/webhooks.md``.

It runs a threaded HTTP server on 127.0.0.1 and records every request. A delivery whose
signature verifies is *accepted* (answered 204) unless the test says to fail it; the
accepted deliveries, deduplicated by ``webhook-id`` as the docs tell receivers to do,
are what a downstream team would have processed. ``stop()`` closes the port (connections
are refused) and ``start()`` opens it again on the same port: a receiver restart.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DOC = Path(__file__).parents[2] / "docs" / "webhooks.md"


def documented_snippet() -> str:
    """The one Python block of the "Verify the signature" section of ``docs/webhooks.md``."""
    section = DOC.read_text().split("## Verify the signature", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return code


def documented_verify() -> Callable[..., None]:
    """``verify(secret, headers, body, tolerance=300, now=None)`` exactly as documented."""
    namespace: dict[str, Any] = {}
    exec(compile(documented_snippet(), str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    verify: Callable[..., None] = namespace["verify"]
    return verify


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    status: int
    verified: bool


@dataclass
class WebhookReceiver:
    """Records deliveries; ``fail`` decides per delivery whether to answer 503 instead of 204."""

    secret: str | None = None
    fail: Callable[[dict[str, Any]], bool] = lambda _event: False
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._verify = documented_verify()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._judge(headers, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _judge(self, headers: dict[str, str], body: bytes) -> int:
        verified = False
        if self.secret is not None:
            try:
                self._verify(self.secret, headers, body)
                verified = True
            except (ValueError, KeyError):
                verified = False
        status = 401 if not verified else 503 if self.fail(json.loads(body)) else 204
        with self._lock:
            self.requests.append(Request(headers, body, status, verified))
        return status

    def accepted(self) -> list[dict[str, Any]]:
        """The events accepted, once each (deduplicated by ``webhook-id``), in arrival order."""
        seen: set[str] = set()
        events: list[dict[str, Any]] = []
        with self._lock:
            requests = list(self.requests)
        for request in requests:
            msg_id = request.headers["webhook-id"]
            if request.status == 204 and msg_id not in seen:
                seen.add(msg_id)
                events.append(json.loads(request.body))
        return events

    def all_bodies(self) -> list[bytes]:
        with self._lock:
            return [r.body for r in self.requests]
