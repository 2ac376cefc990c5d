"""``python -m services.pr_publisher``: open PRs/MRs until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from services.pr_publisher.bootstrap import run_publisher
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.secrets import load_fernet
from shared.service import configure_logging, stop_on_signals
from shared.settings import get_settings


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    topics = Topics(settings.topic_prefix)
    bootstrap = settings.resolved_kafka_bootstrap
    await ensure_topics(
        bootstrap, topics, partitions=settings.partitions, replication_factor=settings.replication_factor
    )
    stop = asyncio.Event()
    stop_on_signals(stop)
    await run_publisher(
        bootstrap,
        topics,
        settings.home / "pr-publisher-state.db",
        load_fernet(settings),
        stop,
        heartbeat_seconds=settings.heartbeat_seconds,
    )


if __name__ == "__main__":
    asyncio.run(main())
