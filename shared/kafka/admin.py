"""Creating Kaizen's topics (idempotently) on any cluster."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.events.topics import Topics
from shared.kafka.security import KafkaSecurity, client_options

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str,
    topics: Topics,
    *,
    partitions: int,
    replication_factor: int = 1,
    security: KafkaSecurity | None = None,
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    ``security``: how to connect; ``None`` means this process's ``KAIZEN_KAFKA_*`` settings.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="kaizen-admin", **client_options(security)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(spec.name, spec.partitions, replication_factor, topic_configs=spec.config)
            for spec in topics.specs(partitions)
            if spec.name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, *rest in response.topic_errors:
                # Another process may have created it between our list and create.
                if code not in (0, TopicAlreadyExistsError.errno):
                    message = rest[0] if rest else ""
                    raise RuntimeError(f"could not create topic {name}: error {code} {message}")
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()
