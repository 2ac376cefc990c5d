"""A throwaway PostgreSQL server from Debian's packages, for the read model's tests.

``KAIZEN_TEST_POSTGRES_URL`` points the tests at an existing server instead. Otherwise a
cluster is initialised in a temporary directory and started on a free loopback port.
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise RuntimeError(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)")
    return candidates[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an asyncpg SQLAlchemy URL of a fresh server; stop and remove it afterwards."""
    existing = os.environ.get("KAIZEN_TEST_POSTGRES_URL")
    if existing:
        yield existing
        return
    root = Path(tempfile.mkdtemp(prefix="kaizen-pg-"))
    data = root / "data"
    port = _free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        _as_postgres([_pg_bin("initdb"), "-D", str(data), "-U", "kaizen", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    log = root / "server.log"
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        _wait_accepting(port)
        yield f"postgresql+asyncpg://kaizen@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _wait_accepting(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL on port {port} did not accept connections within {timeout} s")


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_url``; return its URL."""
    import asyncio

    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return admin_url.rsplit("/", 1)[0] + f"/{name}"
