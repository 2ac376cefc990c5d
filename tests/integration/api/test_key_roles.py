"""Key roles against a real broker and read model: what each role may call, the last admin
key, streams that end after a revocation, and the server-side bootstrap (`kaizen keys`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select

from services.api.routes import jobs as job_routes
from shared.events.envelope import Envelope
from shared.events.jobs import JobRequested
from shared.events.topics import Topics
from shared.readmodel.tables import api_keys
from tests.integration.api.conftest import Api, MakeApi, assert_problem
from tests.support.system import BOOTSTRAP_HEADER

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

INGEST_ROUTES = {
    ("POST", "/api/v1/feedback"),
    ("POST", "/api/v1/feedback/batch"),
    ("POST", "/api/v1/tasks/{task_id}/seed"),
}


async def _new_key(api: Api, role: str) -> dict[str, Any]:
    response = await api.client.post("/api/v1/keys", json={"name": f"{role}-key", "role": role})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["role"] == role
    return created


async def _task_id(api: Api) -> str:
    response = await api.client.post("/api/v1/tasks", json={"name": "roles", "schema_json": ["ticket"]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _calls(api: Api, task_id: str) -> list[tuple[str, str, str]]:
    """(method, route path, concrete URL) of every authenticated route of the app."""
    app = api.transport.app
    calls = []
    for route in iter_route_contexts(app.routes):  # type: ignore[attr-defined]
        path = route.path or ""
        if not path.startswith("/api/v1") or path == "/api/v1/keys/bootstrap":
            continue
        url = path.replace("{task_id}", task_id)
        for name in ("job_id", "key_id"):
            url = url.replace("{" + name + "}", str(uuid.uuid4()))
        calls += [(method, path, url) for method in sorted(route.methods - {"HEAD"})]
    assert len(calls) > 20
    return calls


async def test_an_ingest_key_gets_403_on_every_route_except_feedback_and_seeds(api: Api) -> None:
    task_id = await _task_id(api)
    ingest = {"X-API-Key": (await _new_key(api, "ingest"))["key"]}
    for method, path, url in _calls(api, task_id):
        if (method, path) in INGEST_ROUTES:
            continue
        body = assert_problem(await api.client.request(method, url, headers=ingest, json={}), 403)
        assert "'ingest'" in body["detail"], (method, path, body)
        assert body["required_role"] in ("read", "admin")
    feedback = {"task_id": task_id, "inputs": {"ticket": "t"}, "output": "o", "score": 0.9}
    response = await api.client.post("/api/v1/feedback", json=feedback, headers=ingest)
    assert response.status_code == 201, response.text
    seeds = json.dumps({"inputs": {"ticket": "s"}, "output": "o"}).encode()
    url = f"/api/v1/tasks/{task_id}/seed"
    response = await api.client.post(url, files={"file": ("s.jsonl", seeds)}, headers=ingest)
    assert response.status_code == 201, response.text


#: GETs that show installation configuration: API keys, webhook subscriptions and deliveries.
ADMIN_ONLY_GETS = ("/api/v1/keys", "/api/v1/webhooks")


async def test_a_read_key_may_call_every_get_and_nothing_else(api: Api) -> None:
    task_id = await _task_id(api)
    read = {"X-API-Key": (await _new_key(api, "read"))["key"]}
    for method, path, url in _calls(api, task_id):
        response = await api.client.request(method, url, headers=read, json={})
        if method == "GET" and not path.startswith(ADMIN_ONLY_GETS):
            # The task has no feedback: its estimate is refused as POST /optimize would (400).
            allowed = (200, 400, 404) if path == "/api/v1/optimize/{task_id}/estimate" else (200, 404)
            assert response.status_code in allowed, (method, path, response.text)
        else:
            body = assert_problem(response, 403)
            assert body["required_role"] == ("ingest" if (method, path) in INGEST_ROUTES else "admin")


async def test_a_new_key_needs_its_role_and_shows_it(api: Api) -> None:
    body = assert_problem(await api.client.post("/api/v1/keys", json={"name": "no-role"}), 422)
    assert [e["field"] for e in body["errors"]] == ["role"]
    assert_problem(await api.client.post("/api/v1/keys", json={"name": "x", "role": "root"}), 422)
    created = await _new_key(api, "ingest")
    listed = {k["id"]: k for k in (await api.client.get("/api/v1/keys")).json()}
    assert listed[created["id"]]["role"] == "ingest"
    [bootstrapped] = [k for k in listed.values() if k["bootstrap"]]
    assert bootstrapped["role"] == "admin"
    rows = await api.rows(select(api_keys.c.role).where(api_keys.c.id == created["id"]))
    assert [r.role for r in rows] == ["ingest"]


async def test_revoking_the_last_active_admin_key_is_409(api: Api) -> None:
    [first] = (await api.client.get("/api/v1/keys")).json()
    body = assert_problem(await api.client.delete(f"/api/v1/keys/{first['id']}"), 409)
    assert "last active admin key" in body["detail"]
    reader = await _new_key(api, "read")
    assert_problem(await api.client.delete(f"/api/v1/keys/{first['id']}"), 409)  # a read key is no admin
    assert (await api.client.delete(f"/api/v1/keys/{reader['id']}")).status_code == 204
    second = await _new_key(api, "admin")
    assert (await api.client.delete(f"/api/v1/keys/{first['id']}")).status_code == 204
    api.client.headers["X-API-Key"] = second["key"]
    assert_problem(await api.client.delete(f"/api/v1/keys/{second['id']}"), 409)
    assert (await api.client.get("/api/v1/keys")).status_code == 200


async def test_racing_revocations_of_the_last_two_admin_keys_leave_one(api: Api) -> None:
    [first] = (await api.client.get("/api/v1/keys")).json()
    second = await _new_key(api, "admin")
    answers = await asyncio.gather(
        api.client.delete(f"/api/v1/keys/{first['id']}"), api.client.delete(f"/api/v1/keys/{second['id']}")
    )
    assert sorted(r.status_code for r in answers) == [204, 409], [r.text for r in answers]
    active = await api.rows(select(api_keys.c.id).where(api_keys.c.status == "active"))
    assert len(active) == 1
    survivor = api.key if answers[0].status_code == 409 else second["key"]
    assert (await api.client.get("/api/v1/jobs", headers={"X-API-Key": survivor})).status_code == 200


async def test_a_stream_ends_within_seconds_of_its_keys_revocation(api: Api) -> None:
    task_id = uuid.UUID(await _task_id(api))
    job_id = uuid.uuid4()
    requested = JobRequested(
        job_id=job_id, task_id=task_id, triggered_by="api_on_demand", feedback_count=1, log_offset=0
    )
    await api.seed(Envelope.wrap(requested, source="optimizer"))
    revoked, kept = await _new_key(api, "read"), await _new_key(api, "read")

    def stream(key: dict[str, Any]) -> asyncio.Task[httpx.Response]:
        url = f"/api/v1/jobs/{job_id}/stream"
        return asyncio.create_task(api.client.get(url, headers={"X-API-Key": key["key"]}))

    doomed, control = stream(revoked), stream(kept)
    await asyncio.sleep(1.0)  # both streams are open and past their first key check
    assert not doomed.done() and not control.done()
    assert (await api.client.delete(f"/api/v1/keys/{revoked['id']}")).status_code == 204
    response = await asyncio.wait_for(doomed, job_routes.KEY_CHECK_SECONDS + 3)
    assert response.status_code == 200
    assert "kaizen.job.requested" in response.text  # it streamed, then ended
    # The job is still running: only the revocation ended that stream, not the other one.
    await asyncio.sleep(job_routes.KEY_CHECK_SECONDS + 1)
    assert not control.done()
    control.cancel()
    await asyncio.gather(control, return_exceptions=True)


async def test_kaizen_keys_bootstrap_creates_the_first_admin_key_once(
    make_api: MakeApi, kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")},
        "KAIZEN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "KAIZEN_TOPIC_PREFIX": topics.prefix,
        "KAIZEN_HOME": str(tmp_path / "cli-home"),
    }
    command = [sys.executable, "-m", "kaizen_cli.main", "keys", "bootstrap", "--name", "ops"]
    async with make_api(bootstrap=False) as api:
        first = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, timeout=120)
        assert first.returncode == 0, first.stderr
        key = first.stdout.decode().strip()
        assert key.startswith("kaizen_") and key not in first.stderr.decode()
        headers = {"X-API-Key": key}
        async with asyncio.timeout(20):  # the projector and the API's key feed read it from the log
            while (listed := await api.client.get("/api/v1/keys", headers=headers)).status_code == 401:
                await asyncio.sleep(0.1)
        [info] = listed.json()
        assert (info["name"], info["role"], info["bootstrap"]) == ("ops", "admin", True)
        again = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, timeout=120)
        assert again.returncode == 1 and not again.stdout.strip()
        assert "exists already" in again.stderr.decode()
        closed = await api.client.post("/api/v1/keys/bootstrap", headers=BOOTSTRAP_HEADER)
        assert assert_problem(closed, 403)["type"] == "urn:kaizen:problem:bootstrap-closed"
