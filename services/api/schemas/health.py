"""``/health``, ``/livez``, ``/readyz``: Kafka, the projector's lag, heartbeats, loops."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.api.schemas.common import UtcDateTime

Status = Literal["ok", "degraded"]


class HealthStatus(BaseModel):
    """Up or down, nothing more: what callers without a ``read`` or ``admin`` key see."""

    status: Status


class KafkaHealth(BaseModel):
    reachable: bool
    error: str | None = None


class PartitionLag(BaseModel):
    topic: str
    partition: int
    end_offset: int
    projected_offset: int
    lag: int


class ProjectorHealth(BaseModel):
    lag: int | None = Field(
        description="Events in the log not yet in the read model (null: Kafka unreachable)."
    )
    partitions: list[PartitionLag]


class LoopHealth(BaseModel):
    """One background loop of a process, as of this answer."""

    name: str
    alive: bool = Field(description="Running or waiting to be retried; false once it gave up.")
    last_progress: UtcDateTime = Field(description="When it last finished an iteration.")
    seconds_since_progress: float
    busy_seconds: float | None = Field(
        description="How long the iteration under way has run; null when idle."
    )
    failures: int = Field(description="Failures in a row since its last progress.")
    stuck: bool = Field(
        description="Dead, or no progress for longer than KAIZEN_LOOP_STALL_SECONDS while busy or failing."
    )


class ServiceHealth(BaseModel):
    service: str
    instance: str
    last_heartbeat: UtcDateTime
    age_seconds: float
    alive: bool = Field(description="Heard from within three heartbeat intervals.")
    loops: list[LoopHealth] = Field(default_factory=list, description="As its last heartbeat reported them.")


class MetricsEndpoint(BaseModel):
    """Where a worker service serves its Prometheus metrics (the API serves ``/metrics`` itself)."""

    service: str
    host: str = Field(description="Bind address (KAIZEN_METRICS_HOST).")
    port: int | None = Field(description="Port (KAIZEN_METRICS_PORT_<SERVICE>); null: metrics off.")
    path: str = "/metrics"


class HealthResponse(BaseModel):
    """``ok`` when Kafka and the read model answer and no loop is stuck; ``warnings`` say what is wrong."""

    status: Status
    kafka: KafkaHealth
    database: bool
    projector: ProjectorHealth
    services: list[ServiceHealth]
    loops: list[LoopHealth] = Field(default_factory=list, description="This API process's own loops.")
    warnings: list[str]
    metrics: list[MetricsEndpoint] = Field(
        default_factory=list,
        description="Each worker service's metrics endpoint, as this API's settings configure them.",
    )
