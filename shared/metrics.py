"""Every Prometheus metric family of Kaizen, defined once (``docs/operations.md``, "Metrics").

Operational telemetry for Prometheus, not a job's LLM metering (``services/optimizer/metering.py``)
nor its scoring metrics (``services/optimizer/metrics.py``). Families live in the default
registry of the process that records them: the API serves its own at ``/metrics`` (each
API process reports its own counts), each worker service serves its own on the port its
``KAIZEN_METRICS_PORT_*`` setting names, with :func:`serve`. Label values are bounded
sets (route templates, statuses, model names from the allowlist), never raw paths or ids.
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# -- API ----------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "kaizen_api_requests",
    "HTTP requests answered by this API process, by method, route template and status.",
    ["method", "route", "status"],
)
API_LATENCY = Histogram(
    "kaizen_api_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
#: The answers an SDK reacts to (backs off, shrinks, retries): 413, 429 and 503.
REFUSAL_STATUSES = frozenset({413, 429, 503})
API_REFUSALS = Counter(
    "kaizen_api_refusals",
    "Requests answered 413 (too large), 429 (rate limited) or 503 (unavailable), by route and status.",
    ["route", "status"],
)

# -- Projector ----------------------------------------------------------------------------
PROJECTOR_RECORDS = Counter(
    "kaizen_projector_records",
    "Log records folded into the read model (dead-lettered ones included: their offset is passed).",
)
PROJECTOR_BATCHES = Counter("kaizen_projector_batches", "Batches committed to the read model.")
PROJECTOR_LAG = Gauge(
    "kaizen_projector_lag_records",
    "Records of a partition not yet folded: its high watermark at the last fetch minus the next "
    "offset to fold, measured after each batch.",
    ["topic", "partition"],
)

# -- Stored-offset consumers (projector, optimizer, PR publisher) ------------------------
DEAD_LETTERS = Counter(
    "kaizen_dead_letters",
    "Records a consumer (projector, optimizer, pr_publisher) dead-lettered and passed, by reason: "
    "undecodable, or refused by its database.",
    ["consumer", "reason"],
)

# -- Optimizer ----------------------------------------------------------------------------
JOBS = Counter(
    "kaizen_optimizer_jobs",
    "Job runs this optimizer brought to a verdict, by status (succeeded, failed, cancelled, "
    "compiled: handed to the PR publisher) and failure kind ('' unless failed).",
    ["status", "kind"],
)
JOB_DURATION = Histogram(
    "kaizen_optimizer_job_duration_seconds",
    "Wall-clock time of a job attempt, from taking a slot to its verdict events.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
TRIALS = Counter("kaizen_optimizer_trials", "Optimizer trials evaluated, over every job.")
LLM_CALLS = Counter(
    "kaizen_llm_calls",
    "LLM calls made by jobs, by the model called (task, teacher or judge).",
    ["model"],
)
LLM_TOKENS = Counter(
    "kaizen_llm_tokens",
    "LLM tokens used by jobs, by the model called and kind (prompt, completion).",
    ["model", "kind"],
)
LLM_COST = Counter(
    "kaizen_llm_cost_usd",
    "USD spent on LLM calls by jobs (priced calls only), by the model called.",
    ["model"],
)

# -- PR publisher -------------------------------------------------------------------------
PR_OUTCOMES = Counter(
    "kaizen_pr_outcomes",
    "Pull/merge request attempts, by Git provider and outcome (created, reused, failed).",
    ["provider", "outcome"],
)

# -- Webhooks -----------------------------------------------------------------------------
WEBHOOK_DELIVERIES = Counter(
    "kaizen_webhook_deliveries",
    "Webhook delivery attempts, by outcome (delivered, retrying, dead).",
    ["outcome"],
)


def count_llm_usage(model: str, calls: int, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
    """Add one increment of a job's LLM usage (negative parts, from a reset meter, are ignored)."""
    if calls > 0:
        LLM_CALLS.labels(model).inc(calls)
    if prompt_tokens > 0:
        LLM_TOKENS.labels(model, "prompt").inc(prompt_tokens)
    if completion_tokens > 0:
        LLM_TOKENS.labels(model, "completion").inc(completion_tokens)
    if cost > 0:
        LLM_COST.labels(model).inc(cost)


def serve(port: int, addr: str = "127.0.0.1") -> WSGIServer | None:
    """Serve this process's metrics on ``port`` in a daemon thread; ``0`` means off (``None``).

    A port that cannot be bound (a second instance on one host) is logged as an error and
    the service runs on without metrics (``None``): losing a scrape target is better than
    losing the service. Give each instance its own port.
    """
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port, addr)
    except OSError as exc:
        log.error("metrics not served: cannot listen on %s:%d (%s); set another port", addr, port, exc)
        return None
    log.info("metrics served on %s:%d/metrics", addr, port)
    return server


def stop(server: WSGIServer | None) -> None:
    """Stop a server :func:`serve` started (``None``: nothing to do)."""
    if server is not None:
        server.shutdown()
        server.server_close()
