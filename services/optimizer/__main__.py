"""``python -m services.optimizer``: run the trigger and the job runner until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from services.optimizer.bootstrap import run_optimizer
from services.optimizer.specs import ModelDefaults
from shared.service import start_process
from shared.settings import Settings


def model_defaults(settings: Settings) -> ModelDefaults:
    return ModelDefaults(
        teacher_model=settings.default_teacher_model,
        judge_model=settings.default_judge_model,
        default_api_base=settings.resolved_llm_api_base,
        time_limit_seconds=settings.job_time_limit_seconds,
        allowed_models=settings.model_rules.patterns,
        prices=dict(settings.model_prices),
    )


async def main() -> None:
    p = await start_process()
    await run_optimizer(
        p.bootstrap,
        p.topics,
        p.settings.home / "optimizer-state.db",
        model_defaults(p.settings),
        p.stop,
        concurrency=p.settings.optimizer_concurrency,
        heartbeat_seconds=p.settings.heartbeat_seconds,
        metrics_port=p.settings.metrics_port_optimizer,
        metrics_host=p.settings.metrics_host,
    )


if __name__ == "__main__":
    asyncio.run(main())
