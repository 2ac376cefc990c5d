"""``/health``: Kafka, the projector's lag, and each service's last heartbeat."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.api.schemas.common import UtcDateTime


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


class ServiceHealth(BaseModel):
    service: str
    instance: str
    last_heartbeat: UtcDateTime
    age_seconds: float
    alive: bool = Field(description="Heard from within three heartbeat intervals.")


class HealthResponse(BaseModel):
    """``ok`` when Kafka and the read model answer; ``warnings`` name silent services."""

    status: Literal["ok", "degraded"]
    kafka: KafkaHealth
    database: bool
    projector: ProjectorHealth
    services: list[ServiceHealth]
    warnings: list[str]
