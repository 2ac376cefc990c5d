"""A 1 GB anonymous POST against a real API process: 413, and the process's memory stays flat.

The body is streamed from a generator (the test never holds it) to ``python -m
services.api`` on a real port; the API's resident memory is read from ``/proc``.

The client reads the answer while it sends, as curl does: a server that refuses a body
answers before the body ends and then closes the connection, and a client that only
reads after sending its last byte can meet the close (a reset) before the answer.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import h11
import pytest

from tests.support.live import live_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GIB = 2**30
CHUNK = b"x" * 2**20
MAX_GROWTH_KIB = 50 * 1024


def _gigabyte() -> Iterator[bytes]:
    for _ in range(GIB // len(CHUNK)):
        yield CHUNK


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def _post_reading_early(url: str, framing: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST a gigabyte of JSON-typed bytes, reading the answer as soon as there is one.

    ``framing``: ``Transfer-Encoding: chunked`` or a declared ``Content-Length``. Sending
    stops at the first byte of the answer (or when the server stops reading), then the
    whole answer is read with h11, the HTTP/1.1 parser httpx itself uses.
    """
    parts = urlsplit(url)
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", parts.netloc), ("Content-Type", "application/json"), *framing.items()]
    with socket.create_connection((parts.hostname, parts.port), timeout=120) as sock:
        sock.sendall(conn.send(h11.Request(method="POST", target=parts.path, headers=headers)))
        sock.setblocking(False)
        for chunk in _gigabyte():
            if not _send_until_answered(sock, conn.send(h11.Data(data=chunk))):
                break
        sock.setblocking(True)
        status, answer_headers, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(sock.recv(65536))
                except ConnectionResetError:  # closed before an answer: the status stays 0
                    conn.receive_data(b"")
            elif isinstance(event, h11.Response):
                status = event.status_code
                answer_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, answer_headers, body


def _send_until_answered(sock: socket.socket, data: bytes) -> bool:
    """Send ``data``; False as soon as the server has answered (or stopped reading for 30 s)."""
    view = memoryview(data)
    while view:
        readable, writable, _ = select.select([sock], [sock], [], 30)
        if readable:
            return False
        if not writable:
            return False
        try:
            view = view[sock.send(view) :]
        except (BlockingIOError, InterruptedError):
            continue
        except (BrokenPipeError, ConnectionResetError):
            return False
    return True


def test_a_gigabyte_without_a_key_is_413_and_the_api_does_not_grow(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with live_system(kafka_bootstrap, tmp_path / "home", services=("projector", "api")) as live:
        pid = live.processes["api"].pid
        before = _rss_kib(pid)
        url = f"{live.api_url}/api/v1/feedback"
        chunked = _post_reading_early(url, {"Transfer-Encoding": "chunked"})
        declared = _post_reading_early(url, {"Content-Length": str(GIB)})
        after = _rss_kib(pid)
        print(f"API VmRSS before {before} KiB, after {after} KiB, peak {_rss_kib(pid, 'VmHWM')} KiB")
        for status, headers, body in (chunked, declared):
            assert status == 413, body
            assert headers["content-type"] == "application/problem+json"
            assert json.loads(body)["type"] == "urn:kaizen:problem:body-too-large"
        assert after - before < MAX_GROWTH_KIB
        # The API still serves, and the key check still applies to a body of ordinary size.
        assert live.request("POST", "/api/v1/feedback", {"output": "x"}, key=None)[0] == 401
