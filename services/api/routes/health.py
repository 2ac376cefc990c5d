"""``GET /health`` (no auth): Kafka, the read model, the projector's lag, services' heartbeats.

200 with ``status: ok`` while Kafka and the read model answer; 503 problem+json (the same
document in its ``health`` member) when either does not. A service whose heartbeat is
older than three intervals is named in ``warnings``: writes then wait for a projector
that may be gone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import InterfaceError, OperationalError

from services.api.deps import ProbeDep, ReadModel, SettingsDep
from services.api.errors import request_id
from services.api.pagination import as_utc
from services.api.probe import KafkaUnreachable
from services.api.problems import problem_response, problem_type
from services.api.queries import health as queries
from services.api.schemas.health import (
    HealthResponse,
    KafkaHealth,
    PartitionLag,
    ProjectorHealth,
    ServiceHealth,
)

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"description": "Kafka or the read model is down"}},
)
async def health(request: Request, db: ReadModel, probe: ProbeDep, settings: SettingsDep) -> Any:
    """Whether this API can serve writes, and how far the read model is behind the log."""
    kafka, ends = KafkaHealth(reachable=True), None
    try:
        ends = await probe.end_offsets()
    except KafkaUnreachable as exc:
        kafka = KafkaHealth(reachable=False, error=str(exc))
    database, projected, beats = True, {}, []
    try:
        async with db.connect() as conn:
            projected = await queries.offsets(conn)
            beats = await queries.latest_heartbeats(conn)
    except (OperationalError, InterfaceError):
        database = False
    services = _services(beats, 3 * settings.heartbeat_seconds)
    body = HealthResponse(
        status="ok" if kafka.reachable and database else "degraded",
        kafka=kafka,
        database=database,
        projector=_lag(ends, projected),
        services=services,
        warnings=[
            f"no heartbeat from {s.service} ({s.instance}) for {s.age_seconds:.0f} s"
            for s in services
            if not s.alive
        ],
    )
    if body.status == "ok":
        return body
    return _unhealthy(request, body)


def _lag(ends: dict[tuple[str, int], int] | None, projected: dict[tuple[str, int], int]) -> ProjectorHealth:
    if ends is None:
        return ProjectorHealth(lag=None, partitions=[])
    rows = [
        PartitionLag(
            topic=t,
            partition=p,
            end_offset=end,
            projected_offset=projected.get((t, p), 0),
            lag=max(end - projected.get((t, p), 0), 0),
        )
        for (t, p), end in sorted(ends.items())
    ]
    return ProjectorHealth(lag=sum(r.lag for r in rows), partitions=rows)


def _services(beats: list[Any], stale_after: float) -> list[ServiceHealth]:
    """Every live instance, and the latest instance of each service that has none alive."""
    now = datetime.now(UTC)
    found = [
        ServiceHealth(
            service=b.service,
            instance=b.instance,
            last_heartbeat=as_utc(b.time),
            age_seconds=round((now - as_utc(b.time)).total_seconds(), 3),
            alive=(now - as_utc(b.time)).total_seconds() <= stale_after,
        )
        for b in beats
    ]
    alive = {s.service for s in found if s.alive}
    latest: dict[str, ServiceHealth] = {}
    for s in found:
        if s.service not in alive and (
            s.service not in latest or s.age_seconds < latest[s.service].age_seconds
        ):
            latest[s.service] = s
    return [s for s in found if s.alive] + sorted(latest.values(), key=lambda s: s.service)


def _unhealthy(request: Request, body: HealthResponse) -> Response:
    down = [
        name for name, up in (("Kafka", body.kafka.reachable), ("the read model", body.database)) if not up
    ]
    return problem_response(
        503,
        f"{' and '.join(down)} unreachable; writes are refused until it answers",
        request.url.path,
        title="Service degraded",
        type_=problem_type("degraded"),
        extensions={"health": body.model_dump(mode="json"), "request_id": request_id(request)},
    )
