"""Health, no key needed: ``/livez`` (this process), ``/readyz`` (can serve), ``/health`` (all).

- ``/livez``: 200 while this API process's background loops run and progress; 503 when
  one is dead or stuck, so an orchestrator restarts the process. A broker outage never
  fails it (restarting the API would not bring Kafka back).
- ``/readyz``: 200 when this process can serve: the broker answered its last probe, the
  read model answers, and the in-memory key feed has caught up; 503 otherwise, so a load
  balancer sends traffic elsewhere.
- ``/health``: 200 ``ok`` while Kafka and the read model answer and no loop (this
  process's, or a live service instance's, from its heartbeat) is stuck; 503 problem+json
  otherwise. A service whose heartbeat is older than three intervals is named in
  ``warnings``: writes then wait for a projector that may be gone.

Callers without a ``read`` or ``admin`` key see only ``{"status": ...}``: broker errors
name hosts, and loop names tell an attacker what is failing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, Security
from sqlalchemy.exc import InterfaceError, OperationalError

from services.api.deps import ContextDep, ProbeDep, ReadModel, SettingsDep, api_key_header, current_key
from services.api.errors import request_id
from services.api.pagination import as_utc
from services.api.probe import KafkaUnreachable
from services.api.problems import ProblemError, problem_response, problem_type
from services.api.queries import health as queries
from services.api.schemas.health import (
    HealthResponse,
    HealthStatus,
    KafkaHealth,
    LoopHealth,
    MetricsEndpoint,
    PartitionLag,
    ProjectorHealth,
    ServiceHealth,
)
from shared.events.ops import LoopReport
from shared.loops import Loops, is_stuck
from shared.settings import Settings

router = APIRouter(tags=["health"])

#: Roles that may read the detail of ``/health``.
DETAIL_ROLES = ("read", "admin")
_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"description": "Not healthy (problem+json; detail only with a read or admin key)"}
}


async def sees_detail(
    context: ContextDep, presented: Annotated[str | None, Security(api_key_header)]
) -> bool:
    """Whether the caller presented an active ``read`` or ``admin`` key; never a 401 here."""
    if not presented:
        return False
    try:
        key = await current_key(context, presented)
    except ProblemError:
        return False
    return key.role in DETAIL_ROLES


Detail = Annotated[bool, Depends(sees_detail)]


@router.get("/livez", response_model=HealthStatus, responses=_DOWN)
async def livez(request: Request, settings: SettingsDep) -> Any:
    """Whether this process's background loops run and progress."""
    loops = _own_loops(request)
    if loops is not None and loops.stuck(settings.loop_stall_seconds):
        return _down(request, "a background loop of this process is dead or stuck")
    return HealthStatus(status="ok")


@router.get("/readyz", response_model=HealthStatus, responses=_DOWN)
async def readyz(request: Request, context: ContextDep, db: ReadModel, probe: ProbeDep) -> Any:
    """Whether this process can serve: broker reachable, read model reachable, keys caught up."""
    if probe.state.reachable is not True or not context.keys.serving or not await _database_answers(db):
        return _down(request, "this process cannot serve requests yet")
    return HealthStatus(status="ok")


@router.get(
    "/health",
    response_model=HealthResponse | HealthStatus,
    responses=_DOWN,
    # The key is optional here (it adds the detail): FastAPI lists the key, `{}` adds "or none".
    openapi_extra={"security": [{}]},
)
async def health(
    request: Request, db: ReadModel, probe: ProbeDep, settings: SettingsDep, detail: Detail
) -> Any:
    """Whether this API can serve writes, how far the read model is behind, and every loop."""
    body = await _report(request, db, probe, settings.heartbeat_seconds, settings.loop_stall_seconds)
    body.metrics = metrics_endpoints(settings)
    if body.status == "ok":
        return body if detail else HealthStatus(status="ok")
    if not detail:
        return _down(request, "not healthy; a read or admin API key shows why")
    return _unhealthy(request, body)


async def _report(
    request: Request, db: ReadModel, probe: ProbeDep, heartbeat_seconds: float, bound: float
) -> HealthResponse:
    kafka, ends = KafkaHealth(reachable=True), None
    try:
        ends = await probe.end_offsets()
    except KafkaUnreachable as exc:
        kafka = KafkaHealth(reachable=False, error=str(exc))
    database, projected, beats, loops = True, {}, [], {}
    try:
        async with db.connect() as conn:
            projected = await queries.offsets(conn)
            beats = await queries.latest_heartbeats(conn)
            loops = await queries.loops_by_instance(conn)
    except (OperationalError, InterfaceError):
        database = False
    now = datetime.now(UTC)
    services = _services(beats, loops, 3 * heartbeat_seconds, now, bound)
    loops_here = _own_loops(request)
    own = [_loop(report, now, now, bound) for report in (loops_here.reports() if loops_here else [])]
    stuck = _stuck_loops(services, own)
    return HealthResponse(
        status="ok" if kafka.reachable and database and not stuck else "degraded",
        kafka=kafka,
        database=database,
        projector=_lag(ends, projected),
        services=services,
        loops=own,
        warnings=[
            *(
                f"no heartbeat from {s.service} ({s.instance}) for {s.age_seconds:.0f} s"
                for s in services
                if not s.alive
            ),
            *(f"loop {name} has made no progress for over {bound:.0f} s" for name in stuck),
        ],
    )


def metrics_endpoints(settings: Settings) -> list[MetricsEndpoint]:
    """The worker services' metrics ports (``shared.metrics.serve``); port 0 is off (``null``)."""
    ports = {
        "projector": settings.metrics_port_projector,
        "optimizer": settings.metrics_port_optimizer,
        "pr_publisher": settings.metrics_port_pr_publisher,
        "webhooks": settings.metrics_port_webhooks,
    }
    return [
        MetricsEndpoint(service=service, host=settings.metrics_host, port=port or None)
        for service, port in ports.items()
    ]


def _own_loops(request: Request) -> Loops | None:
    """This process's loops, which the app's lifespan starts (``None`` before it ran)."""
    loops: Loops | None = getattr(request.app.state, "loops", None)
    return loops


async def _database_answers(db: ReadModel) -> bool:
    try:
        async with db.connect() as conn:
            await queries.ping(conn)
    except (OperationalError, InterfaceError):
        return False
    return True


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


def _services(
    beats: list[Any], loops: dict[str, list[Any]], stale_after: float, now: datetime, bound: float
) -> list[ServiceHealth]:
    """Every live instance, and the latest instance of each service that has none alive."""
    found = [
        ServiceHealth(
            service=b.service,
            instance=b.instance,
            last_heartbeat=as_utc(b.time),
            age_seconds=round((now - as_utc(b.time)).total_seconds(), 3),
            alive=(now - as_utc(b.time)).total_seconds() <= stale_after,
            loops=[_loop(_reported(row), as_utc(row.time), now, bound) for row in loops.get(b.instance, [])],
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


def _reported(row: Any) -> LoopReport:
    return LoopReport(
        name=row.loop,
        alive=row.alive,
        seconds_since_progress=row.seconds_since_progress,
        busy_seconds=row.busy_seconds,
        failures=row.failures,
    )


def _loop(report: LoopReport, reported_at: datetime, now: datetime, bound: float) -> LoopHealth:
    """A loop as of ``now``, from what was reported at ``reported_at``."""
    age = max((now - reported_at).total_seconds(), 0.0)
    busy = report.busy_seconds
    return LoopHealth(
        name=report.name,
        alive=report.alive,
        last_progress=reported_at - timedelta(seconds=report.seconds_since_progress),
        seconds_since_progress=round(report.seconds_since_progress + age, 3),
        busy_seconds=None if busy is None else round(busy + age, 3),
        failures=report.failures,
        stuck=is_stuck(report, bound, age),
    )


def _stuck_loops(services: list[ServiceHealth], own: list[LoopHealth]) -> list[str]:
    """Stuck loops of this process and of live instances (a silent instance is a warning already)."""
    names = [f"{loop.name} of this API process" for loop in own if loop.stuck]
    for s in services:
        if s.alive:
            names += [f"{loop.name} of {s.service} ({s.instance})" for loop in s.loops if loop.stuck]
    return names


def _down(request: Request, detail: str) -> Response:
    return problem_response(
        503,
        detail,
        request.url.path,
        title="Service degraded",
        type_=problem_type("degraded"),
        extensions={"health": {"status": "degraded"}, "request_id": request_id(request)},
    )


def _unhealthy(request: Request, body: HealthResponse) -> Response:
    down = [
        name for name, up in (("Kafka", body.kafka.reachable), ("the read model", body.database)) if not up
    ]
    detail = (
        f"{' and '.join(down)} unreachable; writes are refused until it answers"
        if down
        else "a background loop is dead or stuck; see warnings"
    )
    return problem_response(
        503,
        detail,
        request.url.path,
        title="Service degraded",
        type_=problem_type("degraded"),
        extensions={"health": body.model_dump(mode="json"), "request_id": request_id(request)},
    )
