"""Operational events: service heartbeats for ``/health``."""

from __future__ import annotations

from pydantic import Field

from shared.events.base import Event


class ServiceHeartbeat(Event):
    """A service instance is alive; sent every ``KAIZEN_HEARTBEAT_SECONDS``."""

    TYPE = "kaizen.ops.heartbeat.v1"
    SCOPE = "service"
    service: str
    instance: str
    pid: int
    active_jobs: int = Field(0, ge=0)
