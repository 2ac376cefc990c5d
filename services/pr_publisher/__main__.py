"""``python -m services.pr_publisher``: open PRs/MRs until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from services.pr_publisher.bootstrap import run_publisher
from shared.secrets import load_fernet
from shared.service import start_process


async def main() -> None:
    p = await start_process()
    await run_publisher(
        p.bootstrap,
        p.topics,
        p.settings.home / "pr-publisher-state.db",
        load_fernet(p.settings),
        p.stop,
        heartbeat_seconds=p.settings.heartbeat_seconds,
        git_hosts=p.settings.git_host_allowlist,
        metrics_port=p.settings.metrics_port_pr_publisher,
        metrics_host=p.settings.metrics_host,
    )


if __name__ == "__main__":
    asyncio.run(main())
