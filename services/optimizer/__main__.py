"""``python -m services.optimizer``: run the trigger and the job runner until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from services.optimizer.bootstrap import run_optimizer
from services.optimizer.specs import ModelDefaults
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.service import configure_logging, stop_on_signals
from shared.settings import Settings, get_settings


def model_defaults(settings: Settings) -> ModelDefaults:
    api_base = settings.llm_api_base or f"http://127.0.0.1:{settings.llm_port}/v1"
    return ModelDefaults(
        teacher_model=settings.default_teacher_model,
        judge_model=settings.default_judge_model,
        default_api_base=api_base,
        time_limit_seconds=settings.job_time_limit_seconds,
    )


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
    await run_optimizer(
        bootstrap,
        topics,
        settings.home / "optimizer-state.db",
        model_defaults(settings),
        stop,
        concurrency=settings.optimizer_concurrency,
        heartbeat_seconds=settings.heartbeat_seconds,
    )


if __name__ == "__main__":
    asyncio.run(main())
