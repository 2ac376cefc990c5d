"""The one Kafka broker of a test run, wherever it comes from.

In order of preference:

1. ``KAIZEN_KAFKA_BOOTSTRAP``: an existing cluster, checked for readiness and never stopped.
2. ``KAIZEN_TEST_KAFKA=testcontainers`` and a reachable Docker engine: testcontainers'
   Kafka container (Confluent's image, KRaft, Kafka 4.1).
3. Otherwise a :class:`LocalKafka` from Maven Central jars on free loopback ports, with a
   fresh data dir under the run's temporary directory. Its jar cache is shared at
   ``<repo>/.kaizen/kafka/lib``, so the jars download once per machine, not once per run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kaizen_cli.kafka_local import LocalKafka
from shared.kafka.ready import wait_ready

REPO_ROOT = Path(__file__).resolve().parents[2]
JAR_CACHE = REPO_ROOT / ".kaizen" / "kafka" / "lib"
READY_TIMEOUT = 90.0
# Confluent Platform 8.1 ships Apache Kafka 4.1, the version of our local broker.
# testcontainers' KafkaContainer drives Confluent's image scripts, so it cannot run apache/kafka.
CONTAINER_IMAGE = "confluentinc/cp-kafka:8.1.0"
# KafkaContainer sets only the offsets topic to one replica; transactions need the same.
_CONTAINER_SINGLE_NODE_ENV = {
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
    "KAFKA_DEFAULT_REPLICATION_FACTOR": "1",
    "KAFKA_MIN_INSYNC_REPLICAS": "1",
    "KAFKA_LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS": "9223372036854775807",
}

log = logging.getLogger(__name__)


@contextmanager
def session_broker(tmp_root: Path) -> Iterator[str]:
    """Yield the bootstrap address of a ready broker for the whole run; clean up what was started."""
    external = os.environ.get("KAIZEN_KAFKA_BOOTSTRAP")
    wants_container = os.environ.get("KAIZEN_TEST_KAFKA") == "testcontainers"
    if external:
        asyncio.run(wait_ready(external, READY_TIMEOUT))
        yield external
    elif wants_container and docker_available():
        with container_broker() as bootstrap:
            yield bootstrap
    else:
        if wants_container:
            log.warning("KAIZEN_TEST_KAFKA=testcontainers but no Docker engine answers; using LocalKafka")
        with local_broker(tmp_root) as bootstrap:
            yield bootstrap


@contextmanager
def local_broker(tmp_root: Path) -> Iterator[str]:
    """A LocalKafka with fresh data under ``tmp_root``, stopped (JVM gone) on exit."""
    kafka = local_kafka(tmp_root / "home")
    try:
        yield kafka.start(READY_TIMEOUT, fresh=True)
    finally:
        kafka.stop()


def local_kafka(home: Path) -> LocalKafka:
    """A LocalKafka in ``home`` on free ports, sharing the machine's jar cache."""
    client_port, controller_port = free_ports(2)
    return LocalKafka(home, client_port, controller_port, lib_dir=JAR_CACHE)


def free_ports(count: int) -> list[int]:
    """Ports that are free on 127.0.0.1 right now (held together, so they are distinct)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def container_broker() -> Iterator[str]:
    """testcontainers' Kafka (KRaft) with single-node settings; removed on exit."""
    from testcontainers.community.kafka import KafkaContainer  # needs Docker: import only when used

    container = KafkaContainer(CONTAINER_IMAGE).with_kraft()
    for key, value in _CONTAINER_SINGLE_NODE_ENV.items():
        container.with_env(key, value)
    with container:
        bootstrap = container.get_bootstrap_server()
        asyncio.run(wait_ready(bootstrap, READY_TIMEOUT))
        yield bootstrap


def docker_available() -> bool:
    """Whether a Docker engine answers (``DOCKER_HOST`` or the default socket)."""
    try:
        import docker

        client = docker.from_env()
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no permission: all mean "no Docker here"
        return False
