"""Operational events: service heartbeats for ``/health``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import Event


class LoopReport(BaseModel):
    """One background loop of a service instance, as its heartbeat saw it.

    Ages are measured on the instance's monotonic clock when the heartbeat was built;
    a reader adds the heartbeat's own age to judge them later.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(max_length=64)
    alive: bool = Field(description="The loop runs (or waits to be retried); false once it has given up.")
    seconds_since_progress: float = Field(ge=0, description="Since the loop last finished an iteration.")
    busy_seconds: float | None = Field(
        None, ge=0, description="How long the iteration under way has run; null while the loop waits."
    )
    failures: int = Field(0, ge=0, description="Failures in a row since the loop last made progress.")


class ServiceHeartbeat(Event):
    """A service instance is alive; sent every ``KAIZEN_HEARTBEAT_SECONDS``."""

    TYPE = "kaizen.ops.heartbeat.v1"
    SCOPE = "service"
    service: str
    instance: str
    pid: int
    active_jobs: int = Field(0, ge=0)
    loops: list[LoopReport] = Field(default_factory=list, description="Its background loops.")
