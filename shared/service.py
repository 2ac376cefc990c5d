"""What every service process does the same way: heartbeats and a stop signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable

from shared.events.envelope import Envelope
from shared.events.ops import ServiceHeartbeat
from shared.kafka.producer import EventLog, LogUnavailable

log = logging.getLogger(__name__)


def instance_name(service: str) -> str:
    return f"{service}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def heartbeat_loop(
    events: EventLog,
    service: str,
    stop: asyncio.Event,
    interval: float,
    active_jobs: Callable[[], int] | None = None,
) -> None:
    """Announce this instance every ``interval`` seconds until ``stop`` is set."""
    instance = instance_name(service)
    while not stop.is_set():
        beat = ServiceHeartbeat(
            service=service,
            instance=instance,
            pid=os.getpid(),
            active_jobs=active_jobs() if active_jobs else 0,
        )
        try:
            await events.append(Envelope.wrap(beat, source=service))
        except LogUnavailable as exc:
            log.warning("heartbeat not sent: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` so the service shuts down cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiokafka logs every retry at WARNING/ERROR while the broker starts; keep ours readable.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
