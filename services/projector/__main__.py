"""``python -m services.projector``: run the projector until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from services.projector.bootstrap import run_projector
from shared.service import start_process


async def main() -> None:
    p = await start_process()
    await run_projector(
        p.bootstrap,
        p.topics,
        p.settings.resolved_database_url,
        p.stop,
        heartbeat_seconds=p.settings.heartbeat_seconds,
        metrics_port=p.settings.metrics_port_projector,
        metrics_host=p.settings.metrics_host,
    )


if __name__ == "__main__":
    asyncio.run(main())
