"""Webhook subscriptions through the API, and the webhooks service delivering to a receiver.

Real broker, real read model (SQLite and PostgreSQL); the webhooks service runs in-process
against the test's topics, posting to a receiver on 127.0.0.1 that verifies each
signature with the snippet of ``docs/webhooks.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from kaizen_client import AsyncKaizen, NotFound, ValidationFailed
from sqlalchemy import select

from services.projector.bootstrap import rebuild
from services.webhooks.bootstrap import Options, run_webhooks
from services.webhooks.lanes import Policy
from shared.events import codec, jobs
from shared.events.envelope import Envelope
from shared.events.webhooks import WebhookSubscriptionCreated
from shared.git_policy import parse_allowlist
from shared.readmodel.compare import differences
from shared.readmodel.db import make_engine
from shared.readmodel.tables import webhook_deliveries
from shared.secrets import decrypt_token
from tests.integration.api.conftest import Api, MakeApi, assert_problem, read_log
from tests.support.system import TEST_SECRET_KEY
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ALLOWED = "https://hooks.example.com"


@contextlib.asynccontextmanager
async def webhooks_service(api: Api, allowed: str, max_attempts: int = 3) -> AsyncIterator[None]:
    """The webhooks service on the API's topics, with fast retries."""
    stop = asyncio.Event()
    policy = Policy(max_attempts=max_attempts, backoff=0.05, cap=0.2, allowed=parse_allowlist(allowed))
    options = Options(
        policy, timeout=5.0, heartbeat_seconds=1.0, group_id=f"{api.system.topics.prefix}-webhooks"
    )
    task = asyncio.create_task(
        run_webhooks(api.system.bootstrap, api.system.topics, Fernet(TEST_SECRET_KEY), stop, options)
    )
    try:
        yield
        assert not task.done(), task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(check: Callable[[], Any], timeout: float = 60) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.1)
        return result


async def test_targets_outside_the_allowlist_and_unknown_types_are_422(make_api: MakeApi) -> None:
    async with make_api(webhook_hosts=f"{ALLOWED},http://127.0.0.1:8123") as api:
        for url, words in [
            ("https://evil.example.com/x", "KAIZEN_WEBHOOK_HOSTS"),
            ("http://hooks.example.com/x", "plain http"),
            ("https://hooks.example.com/x?token=1", "not a plain http(s) URL"),
            ("https://user@hooks.example.com/x", "not a plain http(s) URL"),
            ("http://127.0.0.1:8124/x", "KAIZEN_WEBHOOK_HOSTS"),
        ]:
            problem = assert_problem(await api.client.post("/api/v1/webhooks", json={"url": url}), 422)
            assert problem["errors"][0]["field"] == "url" and words in problem["detail"], problem
        body = {"url": f"{ALLOWED}/k", "types": ["kaizen.key.created.v1"]}
        problem = assert_problem(await api.client.post("/api/v1/webhooks", json=body), 422)
        assert problem["errors"][0]["field"] == "types"
        assert (await api.client.get("/api/v1/webhooks")).json() == []
        ok = await api.client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:8123/k"})
        assert ok.status_code == 201, ok.text


async def test_only_admin_keys_manage_webhooks(make_api: MakeApi) -> None:
    async with make_api(webhook_hosts=ALLOWED) as api:
        created = (await api.client.post("/api/v1/webhooks", json={"url": f"{ALLOWED}/k"})).json()
        for role in ("read", "ingest"):
            key = (await api.client.post("/api/v1/keys", json={"name": role, "role": role})).json()["key"]
            headers = {"X-API-Key": key}
            for method, path in [
                ("POST", "/api/v1/webhooks"),
                ("GET", "/api/v1/webhooks"),
                ("GET", f"/api/v1/webhooks/{created['id']}"),
                ("GET", f"/api/v1/webhooks/{created['id']}/deliveries"),
                ("DELETE", f"/api/v1/webhooks/{created['id']}"),
            ]:
                json_body = {"url": f"{ALLOWED}/other"} if method == "POST" else None
                answer = await api.client.request(method, path, json=json_body, headers=headers)
                assert assert_problem(answer, 403)["required_role"] == "admin", (role, method, path)
        assert len((await api.client.get("/api/v1/webhooks")).json()) == 1


async def test_the_secret_is_shown_once_and_reaches_the_log_only_encrypted(make_api: MakeApi) -> None:
    async with make_api(webhook_hosts=ALLOWED) as api:
        task_id = str(uuid.uuid4())
        body = {"url": f"{ALLOWED}/k", "types": ["kaizen.job.failed.v1"], "task_id": task_id}
        response = await api.client.post("/api/v1/webhooks", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        secret = created["secret"]
        assert secret.startswith("whsec_") and len(secret) > 40
        assert created["task_id"] == task_id and created["types"] == ["kaizen.job.failed.v1"]
        one = (await api.client.get(f"/api/v1/webhooks/{created['id']}")).json()
        assert one == {k: v for k, v in created.items() if k != "secret"}
        listed = await api.client.get("/api/v1/webhooks")
        assert [w["id"] for w in listed.json()] == [created["id"]] and secret not in listed.text
        records = await read_log(api.system.bootstrap, api.system.topics.keys)
        [event] = [r for r in records if b"subscription_created" in r]
        assert secret.encode() not in event and secret.removeprefix("whsec_").encode() not in event
        decoded = codec.decode(event).data
        assert isinstance(decoded, WebhookSubscriptionCreated)
        ciphertext = decoded.secret_encrypted
        assert decrypt_token(Fernet(TEST_SECRET_KEY), ciphertext) == secret
        assert (await api.client.delete(f"/api/v1/webhooks/{created['id']}")).status_code == 204
        assert_problem(await api.client.get(f"/api/v1/webhooks/{created['id']}"), 404)
        assert_problem(await api.client.delete(f"/api/v1/webhooks/{created['id']}"), 404)
        assert_problem(await api.client.get(f"/api/v1/webhooks/{created['id']}/deliveries"), 404)
        assert (await api.client.get("/api/v1/webhooks")).json() == []


async def _same_after_replay(api: Api, tmp_path: Path) -> None:
    fresh = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    await rebuild(api.system.bootstrap, api.system.topics, fresh)
    live, rebuilt = make_engine(api.system.db_url), make_engine(fresh)
    try:
        assert await differences(live, rebuilt) == []
        assert len(await Api.rows_of(api.system, select(webhook_deliveries))) == 5
    finally:
        await live.dispose()
        await rebuilt.dispose()


async def test_the_python_client_covers_webhooks(make_api: MakeApi) -> None:
    async with make_api(webhook_hosts=ALLOWED) as api:
        client = AsyncKaizen("http://kaizen", api.key, transport=api.transport)
        try:
            created = await client.webhooks.create(f"{ALLOWED}/sdk", types=["kaizen.job.succeeded.v1"])
            assert created.secret.startswith("whsec_") and created.types == ["kaizen.job.succeeded.v1"]
            assert [w.id for w in await client.webhooks.list()] == [created.id]
            assert (await client.webhooks.get(created.id)).url == f"{ALLOWED}/sdk"
            assert await client.webhooks.deliveries(created.id, limit=10) == []
            with pytest.raises(ValidationFailed):
                await client.webhooks.create("https://elsewhere.example.com/x")
            await client.webhooks.delete(created.id)
            with pytest.raises(NotFound):
                await client.webhooks.get(created.id)
        finally:
            await client.aclose()


def _job_history(task_id: uuid.UUID, job_id: uuid.UUID) -> list[Envelope]:
    events = [
        jobs.JobRequested(
            job_id=job_id, task_id=task_id, triggered_by="api_on_demand", feedback_count=3, log_offset=0
        ),
        jobs.JobStarted(job_id=job_id, task_id=task_id, worker="w", teacher_model="t", judge_model="j"),
        jobs.JobFailed(job_id=job_id, task_id=task_id, error_message="no data", kind="no_usable_feedback"),
    ]
    return [Envelope.wrap(e, source="optimizer") for e in events]


async def test_deliveries_are_signed_in_order_and_a_dead_event_shows_in_the_view(
    make_api: MakeApi, tmp_path: Path
) -> None:
    # The receiver refuses JobStarted every time: it dies after 3 attempts, and JobFailed
    # (the next event of the job) is sent only after that.
    receiver = WebhookReceiver(fail=lambda event: event["type"] == jobs.JobStarted.TYPE).start()
    try:
        async with make_api(webhook_hosts=receiver.origin) as api, webhooks_service(api, receiver.origin):
            created = (await api.client.post("/api/v1/webhooks", json={"url": receiver.url})).json()
            receiver.secret = created["secret"]
            task_id, job_id = uuid.uuid4(), uuid.uuid4()
            history = _job_history(task_id, job_id)
            await api.seed(*history)

            async def view() -> list[dict[str, Any]]:
                answer = await api.client.get(f"/api/v1/webhooks/{created['id']}/deliveries")
                rows: list[dict[str, Any]] = answer.json()
                return rows if len(rows) == 5 else []

            rows = await until(view)
            assert [(r["event_type"], r["attempt"], r["outcome"]) for r in reversed(rows)] == [
                (jobs.JobRequested.TYPE, 1, "delivered"),
                (jobs.JobStarted.TYPE, 1, "retrying"),
                (jobs.JobStarted.TYPE, 2, "retrying"),
                (jobs.JobStarted.TYPE, 3, "dead"),
                (jobs.JobFailed.TYPE, 1, "delivered"),
            ]
            dead = rows[1]
            assert (
                dead["status_code"] == 503 and dead["error"] == "HTTP 503" and dead["job_id"] == str(job_id)
            )
            assert dead["event_id"] == str(history[1].id) and dead["retry_in_seconds"] is None
            assert rows[2]["retry_in_seconds"] is not None
            page = await api.client.get(f"/api/v1/webhooks/{created['id']}/deliveries?limit=2&offset=1")
            assert [r["id"] for r in page.json()] == [r["id"] for r in rows[1:3]]
            assert all(r.verified for r in receiver.requests)
            assert [e["id"] for e in receiver.accepted()] == [str(history[0].id), str(history[2].id)]
            arrived = [r.headers["webhook-id"] for r in receiver.requests]
            assert arrived == [str(history[0].id)] + [str(history[1].id)] * 3 + [str(history[2].id)]
            assert all(r.headers["content-type"] == "application/cloudevents+json" for r in receiver.requests)
            # Replay-exact: the log rebuilt into a fresh read model gives the same rows.
            if api.system.db_url.startswith("sqlite"):
                await _same_after_replay(api, tmp_path)
    finally:
        receiver.stop()


async def test_a_subscription_filtered_to_another_task_gets_nothing(make_api: MakeApi) -> None:
    receiver = WebhookReceiver().start()
    try:
        async with make_api(webhook_hosts=receiver.origin) as api, webhooks_service(api, receiver.origin):
            body = {"url": receiver.url, "task_id": str(uuid.uuid4())}
            filtered = (await api.client.post("/api/v1/webhooks", json=body)).json()
            everything = (await api.client.post("/api/v1/webhooks", json={"url": receiver.url})).json()
            receiver.secret = everything["secret"]
            await api.seed(*_job_history(uuid.uuid4(), uuid.uuid4()))

            async def three() -> bool:
                return len(receiver.accepted()) == 3

            await until(three)
            await asyncio.sleep(0.5)
            assert len(receiver.requests) == 3
            answer = await api.client.get(f"/api/v1/webhooks/{filtered['id']}/deliveries")
            assert answer.json() == []
    finally:
        receiver.stop()
