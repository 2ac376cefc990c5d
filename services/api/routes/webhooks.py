"""``/api/v1/webhooks``: subscribe HTTP receivers to job events (admin keys only).

A subscription is a ``WebhookSubscriptionCreated`` event on the keys topic; the
``webhooks`` service delivers, the projector shows the attempts. The signing secret is
made here, answered once, and appended only as its Fernet ciphertext. Target URLs pass
the rules of Git hosts (``shared.git_policy``) against ``KAIZEN_WEBHOOK_HOSTS``.
"""

from __future__ import annotations

import base64
import functools
import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from sqlalchemy import Connection

from services.api.deps import AdminKey, FernetDep, Reads, RequestId, SettingsDep, WriterDep
from services.api.pagination import Limit, Offset
from services.api.problems import invalid, not_found
from services.api.queries import webhooks
from services.api.schemas.common import problem_responses
from services.api.schemas.webhooks import WebhookCreate, WebhookCreated, WebhookDelivery, WebhookInfo
from services.api.validation import FieldError
from shared.events.webhooks import JOB_EVENT_TYPES, WebhookSubscriptionCreated, WebhookSubscriptionDeleted
from shared.git_policy import Origin, webhook_refusal
from shared.secrets import encrypt_token

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
WebhookId = Annotated[uuid.UUID, Path(description="The subscription's id")]


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _problems(body: WebhookCreate, allowed: tuple[Origin, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    if (why := webhook_refusal(body.url, allowed)) is not None:
        errors.append(FieldError(field="url", message=why))
    unknown = sorted(set(body.types or ()) - JOB_EVENT_TYPES)
    if unknown:
        known = ", ".join(sorted(JOB_EVENT_TYPES))
        errors.append(FieldError(field="types", message=f"unknown job event types {unknown}; known: {known}"))
    return errors


@router.post("", status_code=201, responses=problem_responses(401, 422, 503, 504))
async def create_webhook(
    _: AdminKey,
    body: WebhookCreate,
    reads: Reads,
    writer: WriterDep,
    rid: RequestId,
    settings: SettingsDep,
    fernet: FernetDep,
) -> WebhookCreated:
    """Subscribe `url` to job events. The answer holds the signing `secret`, shown only here.

    422 when the URL's origin is not allowed (KAIZEN_WEBHOOK_HOSTS) or a type is unknown.
    """
    if errors := _problems(body, settings.webhook_host_allowlist):
        raise invalid(errors)
    secret = new_secret()
    event = WebhookSubscriptionCreated(
        subscription_id=uuid.uuid4(),
        url=body.url,
        type_filter=sorted(set(body.types or ())),
        task_filter=body.task_id,
        secret_encrypted=encrypt_token(fernet, secret),
    )
    await writer.write(rid, event)
    row = await reads.run(lambda conn: webhooks.get(conn, event.subscription_id))
    assert row is not None  # the write was awaited until projected
    return WebhookCreated(**WebhookInfo.from_row(row).model_dump(), secret=secret)


@router.get("", responses=problem_responses(401))
async def list_webhooks(_: AdminKey, reads: Reads) -> list[WebhookInfo]:
    """Every subscription, newest first, without secrets."""
    return [WebhookInfo.from_row(row) for row in await reads.run(webhooks.all_live)]


@router.get("/{webhook_id}", responses=problem_responses(401, 404, 422))
async def get_webhook(_: AdminKey, webhook_id: WebhookId, reads: Reads) -> WebhookInfo:
    """One subscription, without its secret."""
    return WebhookInfo.from_row(await reads.run(functools.partial(_subscription, webhook_id)))


@router.delete("/{webhook_id}", status_code=204, responses=problem_responses(401, 404, 422, 503, 504))
async def delete_webhook(
    _: AdminKey, webhook_id: WebhookId, reads: Reads, writer: WriterDep, rid: RequestId
) -> Response:
    """Delete a subscription: nothing more is delivered to it, retries included."""
    await reads.run(functools.partial(_subscription, webhook_id))
    await writer.write(rid, WebhookSubscriptionDeleted(subscription_id=webhook_id))
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", responses=problem_responses(401, 404, 422))
async def list_deliveries(
    _: AdminKey, webhook_id: WebhookId, reads: Reads, limit: Limit = 50, offset: Offset = 0
) -> list[WebhookDelivery]:
    """The subscription's delivery attempts, newest first: the dead-letter view.

    Each attempt says the event, the job, the attempt number, the HTTP status or error,
    and its outcome: `delivered`, `retrying` (another attempt follows) or `dead` (given up).
    """
    rows = await reads.run(functools.partial(_deliveries, webhook_id, limit, offset))
    return [WebhookDelivery.from_row(row) for row in rows]


def _subscription(webhook_id: uuid.UUID, conn: Connection) -> Any:
    """The subscription's row; a 404 problem when there is none (or it was deleted)."""
    row = webhooks.get(conn, webhook_id)
    if row is None:
        raise not_found(f"webhook {webhook_id} not found")
    return row


def _deliveries(webhook_id: uuid.UUID, limit: int, offset: int, conn: Connection) -> list[Any]:
    """The subscription's attempts (one ``Reads.run`` work with its check)."""
    _subscription(webhook_id, conn)
    return webhooks.deliveries(conn, webhook_id, limit, offset)
