"""``python -m services.api``: serve the API with uvicorn on ``KAIZEN_API_HOST:KAIZEN_API_PORT``."""

from __future__ import annotations

import os
import signal
import socket
import sys

import uvicorn

from services.api.main import create_app, loop_failed
from shared.service import configure_logging, set_aside_startup_heap
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, "api")
    # SIGTERM makes uvicorn drain and stop; the exit code then tells the supervisor why.
    app = create_app(settings, on_loop_failure=lambda: os.kill(os.getpid(), signal.SIGTERM))
    set_aside_startup_heap()  # the app, its routes and models; not in create_app, which tests call often
    config = uvicorn.Config(
        app,
        log_level=settings.log_level.lower(),
        # Our logging setup already formats every record; uvicorn's would replace it.
        log_config=None,
    )
    uvicorn.Server(config).run(sockets=[shared_socket(settings.api_host, settings.api_port)])
    if loop_failed(app):
        sys.exit(1)


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other API processes may bind too (``SO_REUSEPORT``).

    The kernel spreads new connections over every process listening on the port, so
    ``kaizen up`` runs several (``KAIZEN_API_PROCESSES``): when one is killed the others
    go on answering while the supervisor restarts it (a restart imports for seconds).

    Made with ``IPPROTO_TCP`` named, not left 0: asyncio turns Nagle's algorithm off
    (``TCP_NODELAY``) only on connections whose socket says so, and with Nagle on every
    answer after the first on a kept-alive connection waited for the client's delayed
    ACK, about 40 ms, whatever the route (``bench.api_ratio``: 44 ms p50 at one
    connection for ``GET /livez``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


if __name__ == "__main__":
    main()
