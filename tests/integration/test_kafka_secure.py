"""`kaizen kafka start --secure` is a SASL_SSL broker our settings path reaches, and nobody else does.

One secure broker (SCRAM-SHA-512 over TLS with a generated CA) for the module, on free
ports in a temporary home, sharing the machine's jar cache. Clients are configured only
through what the broker writes for services (``client.env``), read by ``Settings``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import Delivery, EventConsumer
from shared.kafka.producer import EventLog, LogUnavailable
from shared.kafka.ready import KafkaNotReadyError, wait_ready
from shared.kafka.security import PLAINTEXT, KafkaSecurity
from shared.settings import Settings, get_settings
from tests.support import events as ev
from tests.support.broker import JAR_CACHE, free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def secure_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running secure broker; yields the ``client.env`` it wrote for services."""
    from kaizen_cli.kafka_local import LocalKafka

    home = tmp_path_factory.mktemp("secure-kafka")
    port, controller_port = free_ports(2)
    kafka = LocalKafka(home, port, controller_port, "512m", lib_dir=JAR_CACHE, secure=True)
    try:
        bootstrap = kafka.start(120, fresh=True)
        assert kafka.secure is not None
        env = kafka.root / "client.env"
        env.write_text(kafka.secure.client_env(bootstrap))
        yield env
    finally:
        kafka.stop()


@pytest.fixture
def settings(secure_env: Path) -> Settings:
    return Settings(_env_file=secure_env)  # type: ignore[call-arg]  # pydantic-settings' init kwarg


@pytest.fixture
def security(settings: Settings) -> KafkaSecurity:
    return KafkaSecurity.from_settings(settings)


def test_the_written_settings_ask_for_scram_over_tls_and_keep_the_password_in_a_file(
    settings: Settings,
) -> None:
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_sasl_password is None and settings.kafka_sasl_password_file is not None
    assert settings.kafka_sasl_password_file.stat().st_mode & 0o077 == 0
    password = settings.kafka_sasl_password_file.read_text().strip()
    assert password not in repr(settings) and password not in repr(KafkaSecurity.from_settings(settings))


async def test_admin_producer_and_consumer_round_trip_through_the_settings(
    settings: Settings, security: KafkaSecurity
) -> None:
    bootstrap = settings.resolved_kafka_bootstrap
    topics = Topics(f"secure-{uuid.uuid4().hex[:8]}")
    await wait_ready(bootstrap, 30, security=security)
    await ensure_topics(bootstrap, topics, partitions=2, security=security)
    sent = [ev.task_created() for _ in range(3)]
    log = EventLog(bootstrap, topics, client_id="secure-test", security=security)
    try:
        await log.append_all(sent)
        received = await _consume(bootstrap, topics, log, security, count=len(sent))
    finally:
        await log.stop()

    assert sorted(str(d.envelope.id) for d in received if d.envelope) == sorted(str(e.id) for e in sent)


async def test_a_wrong_password_is_refused(
    settings: Settings, security: KafkaSecurity, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = settings.resolved_kafka_bootstrap
    wrong = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=security.sasl_username,
        sasl_password=SecretStr("not-the-password"),
        ssl_cafile=security.ssl_cafile,
    )
    log = EventLog(bootstrap, Topics("secure-refused"), client_id="intruder", timeout=5, security=wrong)

    with caplog.at_level(logging.ERROR, "aiokafka"), pytest.raises(KafkaNotReadyError):
        await wait_ready(bootstrap, 5, security=wrong)
    with _quiet_aiokafka(), pytest.raises(LogUnavailable):
        await log.append(ev.task_created())

    # aiokafka reports "Unable to bootstrap"; why is in its log: the broker refused the login.
    refusals = [r.getMessage() for r in caplog.records if r.name.startswith("aiokafka")]
    assert refusals and all("Authentication failed" in message for message in refusals), refusals


async def test_a_plaintext_client_gets_nothing(settings: Settings) -> None:
    with _quiet_aiokafka(), pytest.raises(KafkaNotReadyError):
        await wait_ready(settings.resolved_kafka_bootstrap, 5, security=PLAINTEXT)


async def test_an_api_write_goes_through_the_secure_broker(
    secure_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The services read the settings from the environment, as ``kaizen up`` runs them."""
    from services.api.main import create_app
    from tests.support.system import BOOTSTRAP_HEADER, TEST_BOOTSTRAP_TOKEN, TEST_SECRET_KEY, running_system

    for line in secure_env.read_text().splitlines():
        name, _, value = line.partition("=")
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        topics = Topics(f"secure-api-{uuid.uuid4().hex[:8]}")
        bootstrap = settings.resolved_kafka_bootstrap
        await ensure_topics(bootstrap, topics, partitions=1)  # the process's settings, as services do
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'kaizen.db'}"
        api_settings = settings.model_copy(
            update={
                "home": tmp_path,
                "secret_key": SecretStr(TEST_SECRET_KEY.decode()),
                "bootstrap_token": SecretStr(TEST_BOOTSTRAP_TOKEN),
                "write_timeout_seconds": 30.0,
            }
        )
        async with running_system(bootstrap, topics, db_url):
            app = create_app(api_settings, topics=topics, db_url=db_url)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://kaizen", timeout=60
                ) as client:
                    created = await client.post(
                        "/api/v1/keys/bootstrap", json={"name": "secure"}, headers=BOOTSTRAP_HEADER
                    )
                    assert created.status_code == 201, created.text
                    listed = await client.get("/api/v1/keys", headers={"X-API-Key": created.json()["key"]})
        assert listed.status_code == 200, listed.text
        assert [key["name"] for key in listed.json()] == ["secure"]
    finally:
        get_settings.cache_clear()


# -- helpers ------------------------------------------------------------------------------


async def _consume(
    bootstrap: str, topics: Topics, log: EventLog, security: KafkaSecurity, *, count: int
) -> list[Delivery]:
    received: list[Delivery] = []
    stop = asyncio.Event()

    async def handle(deliveries: list[Delivery]) -> None:
        received.extend(deliveries)
        if len(received) >= count:
            stop.set()

    consumer = EventConsumer(
        bootstrap=bootstrap,
        topics=[topics.tasks],
        group_id=f"{topics.prefix}-reader",
        events=log,
        handler=handle,
        security=security,
    )
    await asyncio.wait_for(consumer.run(stop), 60)
    return received


class _quiet_aiokafka:
    """Refused connections are the point here; aiokafka logs each one as an error."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("aiokafka")
        self._level = self._logger.level
        self._logger.setLevel(logging.CRITICAL)

    def __exit__(self, *_: object) -> None:
        self._logger.setLevel(self._level)
