"""Read model schema (SQLAlchemy Core). Every timestamp comes from an event's ``time``,
so a rebuilt model is identical to the live one."""

from __future__ import annotations

from typing import get_args

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)

from shared.events.feedback import FeedbackSource
from shared.kafka.offsets import offsets_table

metadata = MetaData()

UUID_LEN = 36

# The next offset to read per (topic, partition): written in the same transaction as rows.
projector_offsets = offsets_table(metadata, "projector_offsets")

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False),
    # active | revoked | refused (a bootstrap key that lost the race to an earlier key)
    Column("status", String(16), nullable=False),
    Column("bootstrap", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    # ingest | read | admin. The server default covers rows of a read model created before
    # roles existed: those keys could do everything. ``kaizen replay`` writes the event's role.
    Column("role", String(16), nullable=False, server_default="admin"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("name_key", String(255), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("git_token_encrypted", Text),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Offset of the triggering event of the task's last job: feedback after it counts
    # toward the next auto trigger (docs/triggers.md).
    Column("last_job_cutoff", Integer, nullable=False, default=-1),
    # The task's live feedback (every source but seed), and how much of it lies after
    # ``last_job_cutoff``: kept by the projector with the feedback rows, so showing a task
    # never counts its feedback (``LIVE_FEEDBACK`` and ``LIVE_SINCE_CUTOFF`` define them).
    Column("live_feedback", Integer, nullable=False, server_default="0"),
    Column("live_since_cutoff", Integer, nullable=False, server_default="0"),
    Index("ix_tasks_name_key", "name_key"),
    Index("ix_tasks_created", "created_at", "id"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("task_id", String(UUID_LEN), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("output", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("source", String(16), nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("log_offset", Integer, nullable=False),
    Index("ix_feedback_task_created", "task_id", "created_at", "id"),
    # GET /api/v1/feedback without a task filter: newest first over every task.
    Index("ix_feedback_created", "created_at", "id"),
    Index("ix_feedback_task_offset", "task_id", "source", "log_offset"),
)

#: The sources of live feedback. Rows hold only the sources events can carry, so
#: ``source IN LIVE_SOURCES`` is ``source != 'seed'``; spelled as a list, it lets a count
#: after an offset walk ``ix_feedback_task_offset`` from that offset, not every row of the task.
LIVE_SOURCES = tuple(s for s in get_args(FeedbackSource) if s != "seed")
_live_of_task = select(func.count()).where(
    feedback.c.task_id == tasks.c.id, feedback.c.source.in_(LIVE_SOURCES)
)
#: ``tasks.live_feedback`` by definition: a scalar subquery correlated to the ``tasks`` row.
LIVE_FEEDBACK = _live_of_task.scalar_subquery()
#: ``tasks.live_since_cutoff`` by definition, likewise.
LIVE_SINCE_CUTOFF = _live_of_task.where(feedback.c.log_offset > tasks.c.last_job_cutoff).scalar_subquery()
# A read model made before the counters existed gets them filled from its rows when they are added.
tasks.c.live_feedback.info["backfill"] = LIVE_FEEDBACK
tasks.c.live_since_cutoff.info["backfill"] = LIVE_SINCE_CUTOFF

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("task_id", String(UUID_LEN), nullable=False),
    Column("prompt_version_id", String(UUID_LEN)),
    Column("status", String(16), nullable=False),
    Column("triggered_by", String(32), nullable=False),
    Column("feedback_count", Integer, nullable=False),
    Column("pr_url", Text),
    Column("error_message", Text),
    Column("job_metadata", JSON, nullable=False),
    Column("progress_step", String(64)),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("log_offset", Integer, nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Index("ix_jobs_created", "created_at", "id"),
    Index("ix_jobs_task_created", "task_id", "created_at", "id"),
    Index("ix_jobs_task_status", "task_id", "status"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("event_id", String(UUID_LEN), primary_key=True),
    Column("job_id", String(UUID_LEN), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("log_offset", Integer, nullable=False),
    Column("type", String(128), nullable=False),
    Column("source", String(64), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("correlation_id", String(64)),
    Column("causation_id", String(64)),
    Column("data", JSON, nullable=False),
    Index("ix_job_events_job", "job_id", "log_offset"),
)

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("task_id", String(UUID_LEN), nullable=False),
    Column("job_id", String(UUID_LEN)),
    Column("version_number", Integer, nullable=False),
    Column("prompt_text", Text, nullable=False),
    Column("demos", JSON, nullable=False),
    Column("dspy_state", JSON, nullable=False),
    Column("eval_score", Float),
    Column("baseline_score", Float),
    Column("optimized_score", Float),
    Column("status", String(16), nullable=False),  # draft | active | archived
    Column("optimizer", String(64), nullable=False),
    Column("dspy_version", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # job | user | repository. The server default covers rows of a read model created before
    # the column existed; ``kaizen replay`` rebuilds such a model with the event's own value.
    Column("source", String(16), nullable=False, server_default="job"),
    Column("test_score", Float),  # the export's score on the held-out test split
    UniqueConstraint("task_id", "version_number", name="uq_prompt_version_number"),
    Index("ix_prompt_versions_task_status", "task_id", "status"),
)

# The outcome of each request that the log decides (create task, optimize, activate,
# bootstrap key, retry PR): the API waits for its row to answer the client.
request_outcomes = Table(
    "request_outcomes",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("outcome", String(16), nullable=False),  # accepted | rejected
    Column("entity_id", String(UUID_LEN)),
    Column("reason", String(64)),
    Column("detail", Text),
)

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("instance", String(128), primary_key=True),
    Column("service", String(64), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("active_jobs", Integer, nullable=False),
)

# Each instance's background loops as its latest heartbeat reported them (for /health).
# A table of its own, not a column: create_all adds it to read models made before it.
service_loops = Table(
    "service_loops",
    metadata,
    Column("instance", String(128), primary_key=True),
    Column("loop", String(64), primary_key=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("alive", Boolean, nullable=False),
    Column("seconds_since_progress", Float, nullable=False),
    Column("busy_seconds", Float),
    Column("failures", Integer, nullable=False),
)

# Webhook subscriptions (services/webhooks): the secret only as its Fernet ciphertext.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("url", Text, nullable=False),
    Column("type_filter", JSON, nullable=False),
    Column("task_filter", String(UUID_LEN)),
    Column("secret_encrypted", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
)

# Every delivery attempt, keyed by the attempt event's id (all kept: the dead-letter view).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("subscription_id", String(UUID_LEN), nullable=False),
    Column("event_id", String(UUID_LEN), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("task_id", String(UUID_LEN), nullable=False),
    Column("job_id", String(UUID_LEN)),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # delivered | retrying | dead
    Column("status_code", Integer),
    Column("error", Text),
    Column("response_snippet", Text),
    Column("duration_ms", Float, nullable=False),
    Column("retry_in_seconds", Float),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Index("ix_webhook_deliveries_subscription", "subscription_id", "attempted_at", "id"),
)
