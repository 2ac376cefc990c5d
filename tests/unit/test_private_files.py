"""Databases, keys and state files are readable by their owner only (issue 11, finding 8)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from shared.kafka.offsets import local_state_engine
from shared.readmodel.db import create_schema, make_engine
from shared.secrets import load_fernet
from shared.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The default umask of most systems: files would be created 0644."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_the_sqlite_read_model_and_its_journals_are_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "home" / "kaizen.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await create_schema(engine)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            await conn.execute(text("INSERT INTO probe VALUES (1)"))
            journals = [p for p in (tmp_path / "home").iterdir() if p.name != "kaizen.db"]
            assert {p.name for p in journals} >= {"kaizen.db-wal"}
            assert {p.name: mode(p) for p in journals} == {p.name: 0o600 for p in journals}
    finally:
        await engine.dispose()
    assert mode(path) == 0o600


async def test_a_services_state_file_is_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "optimizer-state.db"
    engine = local_state_engine(path)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    finally:
        await engine.dispose()
    assert mode(path) == 0o600


async def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "kaizen.db"
    path.touch(mode=0o644)
    assert mode(path) == 0o644
    await make_engine(f"sqlite+aiosqlite:///{path}").dispose()
    assert mode(path) == 0o600


def test_the_generated_secret_key_is_0600_and_an_old_readable_one_is_tightened(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", secret_key=None)
    load_fernet(settings)
    key = tmp_path / "home" / "secret.key"
    assert mode(key) == 0o600
    key.chmod(0o644)
    load_fernet(settings)
    assert mode(key) == 0o600


def test_a_configured_secret_key_writes_no_file(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    load_fernet(Settings(home=tmp_path / "home", secret_key=SecretStr(Fernet.generate_key().decode())))
    assert not (tmp_path / "home" / "secret.key").exists()
