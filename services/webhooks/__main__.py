"""``python -m services.webhooks``: deliver job events to webhook subscribers until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

from services.webhooks.bootstrap import Options, run_webhooks
from services.webhooks.lanes import Policy
from shared.secrets import load_fernet
from shared.service import start_process


async def main() -> None:
    p = await start_process()
    # httpx logs every request at INFO; the attempts are events (and metrics) already.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    s = p.settings
    policy = Policy(
        max_attempts=s.webhook_max_attempts,
        backoff=s.webhook_backoff_seconds,
        cap=s.webhook_backoff_cap_seconds,
        allowed=s.webhook_host_allowlist,
    )
    options = Options(
        policy,
        timeout=s.webhook_timeout_seconds,
        heartbeat_seconds=s.heartbeat_seconds,
        metrics_port=s.metrics_port_webhooks,
        metrics_host=s.metrics_host,
    )
    await run_webhooks(p.bootstrap, p.topics, load_fernet(s), p.stop, options)


if __name__ == "__main__":
    asyncio.run(main())
