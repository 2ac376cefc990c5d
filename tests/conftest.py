"""Fixtures shared by every tier.

One Kafka broker for the whole run (``tests/support/broker.py``); a fresh topic prefix
per test so tests never see each other's events; the read model on SQLite and on
PostgreSQL through the same ``db_url`` fixture.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The shared Git-host contract suite holds assertions; several test modules import it,
# so its assertion rewriting is registered here, before any of them is collected.
pytest.register_assert_rewrite("tests.fakes.git_host_contract")

from shared.events.topics import Topics  # noqa: E402
from shared.kafka.admin import ensure_topics  # noqa: E402


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The one broker of this test run (local from Maven jars unless configured)."""
    from tests.support.broker import session_broker

    with session_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture
async def topics(kafka_bootstrap: str) -> AsyncIterator[Topics]:
    """Kaizen's topics under a prefix no other test uses."""
    names = Topics(prefix=f"test-{uuid.uuid4().hex[:12]}")
    await ensure_topics(kafka_bootstrap, names, partitions=3)
    yield names


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the run (started from Debian's binaries)."""
    from tests.support.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty read model database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'readmodel.db'}"
    from tests.support.postgres import create_database

    server: str = request.getfixturevalue("postgres_url")
    return create_database(server, f"kaizen_{uuid.uuid4().hex[:12]}")
