"""Building the FastAPI app; its lifespan owns every connection.

The app starts without Kafka: the event log connects on first use (and after every
failure), so while the broker is down reads still work and writes answer 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api import SERVICE_NAME, errors, limits, openapi, request_metrics, routes
from services.api.adapters import ProjectionWatcher, Writer
from services.api.deps import ApiContext
from services.api.keyfeed import KeyFeed
from services.api.probe import LogProbe, watch_broker
from services.api.reads import Reads
from services.api.routes import health
from services.api.ui import docs as offline_docs
from services.api.ui import install as install_dashboard
from shared import tracing
from shared.events.topics import Topics
from shared.kafka.producer import EventLog, LogUnavailable
from shared.loops import Loops
from shared.readmodel.db import create_schema, make_engine
from shared.secrets import load_fernet
from shared.service import tracing_service_name
from shared.settings import Settings

log = logging.getLogger(__name__)
#: Read-model connections kept open, for the requests one process serves at once: with
#: fewer, every request above them opened and closed a connection of its own (for SQLite
#: a new thread too). As many again are opened for a burst.
POOL_SIZE = 16

DESCRIPTION = """Kaizen turns scored feedback on LLM outputs into better prompts, delivered as pull requests.

Every endpoint under `/api/v1` needs an `X-API-Key` header, except `POST /api/v1/keys/bootstrap`.
Every error is an RFC 7807 `application/problem+json` document. A malformed id in a path,
query or body is a 422 naming the field. A write answers once the read model shows it:
503 means nothing was written (Kafka is down), 504 means it is in the log but not visible yet.
"""


def create_app(
    settings: Settings,
    *,
    topics: Topics | None = None,
    bootstrap: str | None = None,
    db_url: str | None = None,
    on_loop_failure: Callable[[], None] | None = None,
) -> FastAPI:
    """The API for ``settings``; ``topics``, ``bootstrap`` and ``db_url`` override them (tests).

    ``on_loop_failure`` runs when a background loop gives up (the server's entry point
    stops the server, then exits non-zero); without it only ``/livez`` turns 503.
    """
    fernet = load_fernet(settings)  # fail at start, with a clear message, on a bad key
    tracing.setup(settings.tracing, tracing_service_name(SERVICE_NAME))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The process's one engine and pool; sized so concurrent requests reuse connections.
        engine = make_engine(db_url or settings.resolved_database_url, pool_size=POOL_SIZE)
        tracing.instrument_engine(engine)
        await _create_schema(engine)
        names = topics or Topics(settings.topic_prefix)
        servers = bootstrap or settings.resolved_kafka_bootstrap
        events = EventLog(servers, names, client_id=SERVICE_NAME, timeout=settings.write_timeout_seconds)
        reads = Reads(engine)
        watcher = ProjectionWatcher(engine, reads=reads)
        probe = LogProbe(servers, names)
        key_feed = KeyFeed(servers, names.keys)
        stopping = asyncio.Event()
        loops = app.state.loops = Loops(stopping, on_fatal=on_loop_failure or (lambda: None))
        app.state.kaizen = ApiContext(
            settings,
            names,
            engine,
            events,
            watcher,
            Writer(events, watcher, settings.write_timeout_seconds, key_feed, probe.state),
            probe,
            fernet,
            key_feed,
            reads,
        )
        warm_up = asyncio.create_task(_connect(events), name="api-connect-kafka")
        key_feed.start()
        loops.spawn("broker-watch", lambda health: watch_broker(probe, stopping, health))
        try:
            yield
        finally:
            stopping.set()
            await loops.close()
            await asyncio.gather(warm_up, return_exceptions=True)
            await key_feed.close()
            await watcher.close()
            await reads.dispose()
            await probe.close()
            await events.stop()
            await engine.dispose()

    # docs_url=None, redoc_url=None: FastAPI's own pages load their assets from a CDN; ours do not.
    app = FastAPI(
        title="Kaizen API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    limits.install(app, limits.BodyLimits(json=settings.max_body_bytes))
    errors.install(app)
    openapi.install(app)
    app.include_router(health.router)
    routes.include(app)
    offline_docs.install(app)
    install_dashboard(app)
    if tracing.enabled():  # HTTP server spans; nothing on the hot path while tracing is off
        from shared.tracing import http

        http.install(app)
    request_metrics.install(app)  # last: its middleware is outermost, it sees every answer
    return app


def loop_failed(app: FastAPI) -> bool:
    """Whether a background loop of ``app`` gave up (the process should exit non-zero)."""
    loops: Loops | None = getattr(app.state, "loops", None)
    return loops is not None and loops.failure is not None


async def _connect(events: EventLog) -> None:
    """Connect early so the first write is fast; a broker that is down is not an error here."""
    try:
        await events.start()
    except LogUnavailable as exc:
        log.warning("Kafka is not reachable yet (writes answer 503 until it is): %s", exc)


async def _create_schema(engine: AsyncEngine, attempts: int = 5) -> None:
    """Create the read model's tables; another process creating them at the same time may clash once."""
    for attempt in range(1, attempts + 1):
        try:
            await create_schema(engine)
            return
        except DBAPIError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)
