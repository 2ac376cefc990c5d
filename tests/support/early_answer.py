"""POST a body the server may refuse, reading its answer while sending, as curl does.

A server that refuses a body (413) answers before the body ends and then closes the
connection. A client that reads only after sending its last byte can meet that close, a
reset, before the answer: ``urllib`` then raises ``BrokenPipeError`` instead of showing
the 413. These helpers stop sending at the first byte of the answer and parse it with
h11, the HTTP/1.1 parser httpx itself uses.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import h11


def post_reading_early(
    url: str, chunks: Iterable[bytes], headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """POST ``chunks``; returns (status, lower-cased headers, body) of the answer.

    ``headers`` carry the framing: ``Transfer-Encoding: chunked`` or a declared
    ``Content-Length``. The status is 0 when the server closed without answering.
    """
    parts = urlsplit(url)
    conn = h11.Connection(h11.CLIENT)
    framing = [("Host", parts.netloc), *headers.items()]
    request = h11.Request(method="POST", target=parts.path, headers=framing)
    with socket.create_connection((parts.hostname, parts.port), timeout=120) as sock:
        sock.sendall(conn.send(request))
        sock.setblocking(False)
        for chunk in chunks:
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
        if readable or not writable:
            return False
        try:
            view = view[sock.send(view) :]
        except (BlockingIOError, InterruptedError):
            continue
        except (BrokenPipeError, ConnectionResetError):
            return False
    return True
