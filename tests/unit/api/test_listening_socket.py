"""The API's shared listening socket: its connections answer without waiting for Nagle."""

from __future__ import annotations

import asyncio
import socket
from typing import ClassVar

import pytest

from services.api.__main__ import shared_socket

pytestmark = pytest.mark.timeout(30)


class Echo(asyncio.Protocol):
    """Answers every chunk with two writes, as an HTTP server writes headers, then body."""

    nodelay: ClassVar[list[int]] = []  # one entry per accepted connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        Echo.nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"head;")
        self.transport.write(b"body\n")


async def test_connections_accepted_on_the_shared_socket_have_nagle_turned_off() -> None:
    Echo.nodelay.clear()
    listening = shared_socket("127.0.0.1", 0)
    server = await asyncio.get_running_loop().create_server(Echo, sock=listening)
    try:
        port = listening.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):  # several exchanges on one kept-alive connection, as wrk and browsers do
            writer.write(b"ping\n")
            assert await asyncio.wait_for(reader.readline(), 5) == b"head;body\n"
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    # With Nagle on, the second write of each answer after the first waited for the
    # client's delayed ACK, about 40 ms (measured with wrk; tests never time anything).
    assert Echo.nodelay and all(Echo.nodelay), "asyncio left Nagle on for the accepted connection"
