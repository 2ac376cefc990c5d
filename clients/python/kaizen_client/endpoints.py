"""Every endpoint of the API: method, path, body and answer models, parameters.

The clients build their requests from this table, and a test checks it against the
server's OpenAPI document, so an endpoint the server adds or changes fails that test.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from kaizen_client import models as m


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    #: The JSON body's model (``None``: no JSON body).
    body: type[BaseModel] | None = None
    #: The success answer's model (``None``: no body, or not JSON).
    answer: type[BaseModel] | None = None
    #: The answer is a list of ``answer``.
    many: bool = False
    #: Query and header parameters, by their wire names.
    params: tuple[str, ...] = ()
    #: A multipart upload instead of a JSON body.
    upload: bool = False


IDEMPOTENCY = "Idempotency-Key"

ENDPOINTS: dict[str, Endpoint] = {
    "livez": Endpoint("GET", "/livez", answer=m.HealthStatus),
    "readyz": Endpoint("GET", "/readyz", answer=m.HealthStatus),
    "health": Endpoint("GET", "/health", answer=m.HealthResponse),
    "keys.bootstrap": Endpoint(
        "POST", "/api/v1/keys/bootstrap", m.BootstrapCreate, m.KeyCreated, params=("X-Bootstrap-Token",)
    ),
    "keys.list": Endpoint("GET", "/api/v1/keys", answer=m.KeyInfo, many=True),
    "keys.create": Endpoint("POST", "/api/v1/keys", m.KeyCreate, m.KeyCreated),
    "keys.revoke": Endpoint("DELETE", "/api/v1/keys/{key_id}"),
    "tasks.create": Endpoint("POST", "/api/v1/tasks", m.TaskCreate, m.TaskResponse),
    "tasks.list": Endpoint("GET", "/api/v1/tasks", answer=m.TaskPage, params=("limit", "cursor")),
    "tasks.get": Endpoint("GET", "/api/v1/tasks/{task_id}", answer=m.TaskResponse),
    "tasks.update": Endpoint("PATCH", "/api/v1/tasks/{task_id}", m.TaskUpdate, m.TaskResponse),
    "tasks.delete": Endpoint("DELETE", "/api/v1/tasks/{task_id}"),
    "feedback.record": Endpoint(
        "POST", "/api/v1/feedback", m.FeedbackCreate, m.FeedbackResponse, params=(IDEMPOTENCY,)
    ),
    "feedback.batch": Endpoint(
        "POST", "/api/v1/feedback/batch", m.FeedbackBatch, m.FeedbackBatchResult, params=(IDEMPOTENCY,)
    ),
    "feedback.list": Endpoint(
        "GET", "/api/v1/feedback", answer=m.FeedbackResponse, many=True, params=("task_id", "limit", "offset")
    ),
    "seeds.upload": Endpoint(
        "POST", "/api/v1/tasks/{task_id}/seed", answer=m.SeedUploadResult, params=(IDEMPOTENCY,), upload=True
    ),
    "jobs.list": Endpoint(
        "GET", "/api/v1/jobs", answer=m.JobResponse, many=True, params=("task_id", "limit", "offset")
    ),
    "jobs.get": Endpoint("GET", "/api/v1/jobs/{job_id}", answer=m.JobResponse),
    "jobs.retry_pr": Endpoint("POST", "/api/v1/jobs/{job_id}/retry-pr", answer=m.JobResponse),
    "jobs.cancel": Endpoint("POST", "/api/v1/jobs/{job_id}/cancel", answer=m.JobResponse),
    "jobs.events": Endpoint("GET", "/api/v1/jobs/{job_id}/events", answer=m.JobEvent, many=True),
    "jobs.stream": Endpoint("GET", "/api/v1/jobs/{job_id}/stream", params=("Last-Event-ID",)),
    "prompts.active": Endpoint("GET", "/api/v1/prompts/{task_id}", answer=m.PromptVersionResponse),
    "prompts.register": Endpoint(
        "POST", "/api/v1/prompts/{task_id}", m.PromptRegistration, m.PromptVersionResponse
    ),
    "prompts.versions": Endpoint(
        "GET",
        "/api/v1/prompts/{task_id}/versions",
        answer=m.PromptVersionResponse,
        many=True,
        params=("limit", "offset"),
    ),
    "prompts.activate": Endpoint(
        "POST",
        "/api/v1/prompts/{task_id}/activate",
        m.ActivateRequest,
        m.PromptVersionResponse,
        params=("version_id",),
    ),
    "optimize": Endpoint("POST", "/api/v1/optimize/{task_id}", answer=m.OptimizeResponse),
    "optimize.estimate": Endpoint("GET", "/api/v1/optimize/{task_id}/estimate", answer=m.OptimizeEstimate),
    "webhooks.create": Endpoint("POST", "/api/v1/webhooks", m.WebhookCreate, m.WebhookCreated),
    "webhooks.list": Endpoint("GET", "/api/v1/webhooks", answer=m.WebhookInfo, many=True),
    "webhooks.get": Endpoint("GET", "/api/v1/webhooks/{webhook_id}", answer=m.WebhookInfo),
    "webhooks.delete": Endpoint("DELETE", "/api/v1/webhooks/{webhook_id}"),
    "webhooks.deliveries": Endpoint(
        "GET",
        "/api/v1/webhooks/{webhook_id}/deliveries",
        answer=m.WebhookDelivery,
        many=True,
        params=("limit", "offset"),
    ),
}
