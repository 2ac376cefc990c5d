"""Jobs exactly as the seed page documents them, plus retry-pr outcomes, cancel, history and SSE.

Job histories are appended to the log as the optimizer and the PR publisher would emit
them; retry-pr outcomes are answered by the test in the publisher's place.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from shared.events.envelope import Envelope
from shared.events.jobs import JobCompiled, JobRequested
from shared.events.prs import PrCreated, PrFailed
from shared.readmodel.tables import job_events
from tests.integration.api.conftest import Api, MakeApi, assert_problem
from tests.support.events import job_lifecycle

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

JOB_FIELDS = {
    "id",
    "task_id",
    "prompt_version_id",
    "status",
    "triggered_by",
    "feedback_count",
    "pr_url",
    "error_message",
    "job_metadata",
    "progress_step",
    "started_at",
    "completed_at",
    "created_at",
}


async def _task_id(api: Api, name: str = "summarize") -> uuid.UUID:
    response = await api.client.post("/api/v1/tasks", json={"name": name})
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def _job(api: Api, task_id: uuid.UUID, outcome: str) -> uuid.UUID:
    chain = job_lifecycle(task_id, outcome)
    await api.seed(*chain)
    return chain[0].job_id  # type: ignore[return-value]


async def test_a_finished_job_has_every_documented_field(api: Api) -> None:
    task_id = await _task_id(api)
    job_id = await _job(api, task_id, "pr_created")
    response = await api.client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job = response.json()
    assert set(job) == JOB_FIELDS
    assert job["id"] == str(job_id) and job["task_id"] == str(task_id)
    assert (
        job["status"] == "SUCCESS" and job["triggered_by"] == "auto_threshold" and job["feedback_count"] == 52
    )
    assert job["pr_url"] == "http://git.test/o/r/pull/1" and job["error_message"] is None
    assert job["progress_step"] == "pr_created" and uuid.UUID(job["prompt_version_id"])
    meta = job["job_metadata"]
    assert {
        "teacher_model",
        "judge_model",
        "trials_completed",
        "duration_seconds",
        "train_size",
        "val_size",
        "cost_usd",
    } <= set(meta)
    assert (meta["train_size"], meta["val_size"], meta["trials_completed"]) == (41, 11, 3)
    for name in ("started_at", "completed_at", "created_at"):
        assert job[name].endswith("Z") and datetime.fromisoformat(job[name])
    assert job["created_at"] <= job["started_at"] <= job["completed_at"]


async def test_a_failed_job_says_why(api: Api) -> None:
    job_id = await _job(api, await _task_id(api), "failed")
    job = (await api.client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "FAILED" and "unreachable" in job["error_message"] and job["pr_url"] is None


async def test_list_is_newest_first_filtered_and_stable_for_equal_times(api: Api) -> None:
    one, two = await _task_id(api, "one"), await _task_id(api, "two")
    same_instant = datetime(2024, 1, 15, 10, 29, 55, tzinfo=UTC)
    requested = [
        Envelope.wrap(
            JobRequested(
                job_id=uuid.uuid4(), task_id=one, triggered_by="api_on_demand", feedback_count=1, log_offset=0
            ),
            source="optimizer",
            time=same_instant,
        )
        for _ in range(3)
    ]
    await api.seed(*requested)
    newest = await _job(api, two, "success")
    listed = (await api.client.get("/api/v1/jobs")).json()
    assert listed[0]["id"] == str(newest)
    tied = sorted((str(e.job_id) for e in requested), reverse=True)
    assert [j["id"] for j in listed[1:]] == tied
    assert listed[1]["created_at"] == "2024-01-15T10:29:55Z"
    only_one = (
        await api.client.get("/api/v1/jobs", params={"task_id": str(one), "limit": 2, "offset": 1})
    ).json()
    assert [j["id"] for j in only_one] == tied[1:3]
    assert (await api.client.get("/api/v1/jobs", params={"task_id": str(uuid.uuid4())})).json() == []
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"task_id": "not-a-uuid"}):
        assert_problem(await api.client.get("/api/v1/jobs", params=params), 422)
    assert_problem(await api.client.get(f"/api/v1/jobs/{uuid.uuid4()}"), 404)


async def _answer_retry(api: Api, job_id: uuid.UUID, answer: Any) -> None:
    """Play the PR publisher: wait for the retry request, answer it with its correlation id."""
    query = select(job_events).where(
        job_events.c.job_id == str(job_id), job_events.c.type == "kaizen.pr.retry_requested.v1"
    )
    for _ in range(500):
        rows = await api.rows(query)
        if rows:
            await api.system.append(
                Envelope.wrap(answer, source="pr_publisher", correlation_id=rows[-1].correlation_id)
            )
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the retry request never reached the read model")


async def test_retry_pr_returns_the_job_with_its_new_pr(api: Api) -> None:
    task_id = await _task_id(api)
    job_id = await _job(api, task_id, "pr_failed")
    created = PrCreated(
        job_id=job_id, task_id=task_id, pr_url="http://git.test/o/r/pull/2", number=2, branch="b"
    )
    response, _ = await asyncio.gather(
        api.client.post(f"/api/v1/jobs/{job_id}/retry-pr"), _answer_retry(api, job_id, created)
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert (
        job["status"] == "SUCCESS"
        and job["pr_url"] == "http://git.test/o/r/pull/2"
        and job["error_message"] is None
    )
    assert_problem(await api.client.post(f"/api/v1/jobs/{job_id}/retry-pr"), 409)


async def test_retry_pr_that_fails_again_is_502_with_the_reason(api: Api) -> None:
    task_id = await _task_id(api)
    job_id = await _job(api, task_id, "pr_failed")
    failed = PrFailed(job_id=job_id, task_id=task_id, reason="branch main is protected", retryable=False)
    response, _ = await asyncio.gather(
        api.client.post(f"/api/v1/jobs/{job_id}/retry-pr"), _answer_retry(api, job_id, failed)
    )
    assert assert_problem(response, 502)["detail"] == "branch main is protected"
    assert (await api.client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "PR_FAILED"


async def test_retry_pr_without_an_answer_in_time_is_504_and_leaves_the_job(make_api: MakeApi) -> None:
    async with make_api(retry_pr_timeout_seconds=1.0) as api:
        job_id = await _job(api, await _task_id(api), "pr_failed")
        assert_problem(await api.client.post(f"/api/v1/jobs/{job_id}/retry-pr"), 504)
        assert (await api.client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "PR_FAILED"


async def test_retry_pr_refuses_unknown_jobs_other_statuses_and_missing_versions(api: Api) -> None:
    task_id = await _task_id(api)
    assert_problem(await api.client.post(f"/api/v1/jobs/{uuid.uuid4()}/retry-pr"), 404)
    succeeded = await _job(api, task_id, "success")
    assert (
        "not PR_FAILED"
        in assert_problem(await api.client.post(f"/api/v1/jobs/{succeeded}/retry-pr"), 409)["detail"]
    )
    orphan = uuid.uuid4()
    ids = {"job_id": orphan, "task_id": task_id}
    await api.seed(
        *(
            Envelope.wrap(e, source="optimizer")
            for e in (
                JobRequested(**ids, triggered_by="api_on_demand", feedback_count=3, log_offset=0),
                JobCompiled(**ids, prompt_version_id=uuid.uuid4(), job_metadata={}, publish=True),
            )
        ),
        Envelope.wrap(PrFailed(**ids, reason="bad token", retryable=False), source="pr_publisher"),
    )
    body = assert_problem(await api.client.post(f"/api/v1/jobs/{orphan}/retry-pr"), 404)
    assert "prompt version" in body["detail"]


async def test_cancel_is_accepted_for_an_active_job_only(api: Api) -> None:
    task_id = await _task_id(api)
    active = uuid.uuid4()
    requested = JobRequested(
        job_id=active, task_id=task_id, triggered_by="api_on_demand", feedback_count=1, log_offset=0
    )
    await api.seed(Envelope.wrap(requested, source="optimizer"))
    response = await api.client.post(f"/api/v1/jobs/{active}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["progress_step"] == "cancelling"
    finished = await _job(api, task_id, "success")
    assert_problem(await api.client.post(f"/api/v1/jobs/{finished}/cancel"), 409)
    assert_problem(await api.client.post(f"/api/v1/jobs/{uuid.uuid4()}/cancel"), 404)


async def test_a_compiled_job_being_published_can_no_longer_be_cancelled(api: Api) -> None:
    task_id = await _task_id(api)
    ids = {"job_id": uuid.uuid4(), "task_id": task_id}
    await api.seed(
        *(
            Envelope.wrap(e, source="optimizer")
            for e in (
                JobRequested(**ids, triggered_by="api_on_demand", feedback_count=3, log_offset=0),
                JobCompiled(**ids, prompt_version_id=uuid.uuid4(), job_metadata={}, publish=True),
            )
        )
    )
    body = assert_problem(await api.client.post(f"/api/v1/jobs/{ids['job_id']}/cancel"), 409)
    assert "publishing_pr" in body["detail"] and "no longer be cancelled" in body["detail"]
    assert (await api.client.get(f"/api/v1/jobs/{ids['job_id']}")).json()["progress_step"] == "publishing_pr"


async def test_history_and_stream_show_every_event_in_log_order(api: Api) -> None:
    task_id = await _task_id(api)
    chain = job_lifecycle(task_id, "pr_failed")
    await api.seed(*chain)
    job_id = chain[0].job_id
    history = (await api.client.get(f"/api/v1/jobs/{job_id}/events")).json()
    assert [e["type"] for e in history] == [e.type for e in chain]
    assert history[1]["causation_id"] == str(chain[0].id) and history[0]["correlation_id"] == str(job_id)
    assert history[-1]["source"] == "pr_publisher" and history[-1]["time"].endswith("Z")
    assert history[2]["data"]["train_size"] == 41
    stream = await api.client.get(f"/api/v1/jobs/{job_id}/stream")
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    sent = [
        json.loads(line[len("data: ") :]) for line in stream.text.splitlines() if line.startswith("data: ")
    ]
    assert [e["type"] for e in sent] == [e.type for e in chain]
    resumed = await api.client.get(
        f"/api/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": str(history[-2]["offset"])}
    )
    assert [line for line in resumed.text.splitlines() if line.startswith("event: ")] == [
        f"event: {chain[-1].type}"
    ]
    assert_problem(await api.client.get(f"/api/v1/jobs/{uuid.uuid4()}/events"), 404)
    assert_problem(await api.client.get(f"/api/v1/jobs/{uuid.uuid4()}/stream"), 404)
