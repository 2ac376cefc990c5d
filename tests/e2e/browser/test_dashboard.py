"""The dashboard as a person uses it, in headless Chromium against the whole system.

Two tasks share an optimizer that runs one job at a time (``KAIZEN_OPTIMIZER_CONCURRENCY=1``)
and a slowed scripted LLM, so the second task's job is seen waiting in PENDING on the Jobs
page, then reaching SUCCESS, without a reload. The first task's job ends PR_FAILED (the
fake GitHub refuses pull requests): its retry is refused in plain words, then succeeds.
The second task's versions (the registered baseline and the job's draft) are diffed and
the draft activated. A read key sees no admin buttons; an ingest key cannot sign in; a
revoked key ends its session. Every page passes axe-core without serious violations.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser.conftest import only_local, policy_violations, serious_violations
from tests.e2e.test_optimization_jobs import create_task, post_tickets, scripted_env
from tests.e2e.test_pull_requests import git_settings
from tests.fakes.git_host_contract import REPO, started_host
from tests.fakes.scripted_llm import ScriptedLLM
from tests.support.live import Live, live_system

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]
BASELINE = "Read the support ticket and name the team that should handle it.\nAnswer with one word."
JOB_TIMEOUT_MS = 300_000

# Every status a job row showed, recorded in the page as the rows change (a reload would lose it).
WATCH_STATUSES = """() => {
  window.__statuses = {};
  window.__notReloaded = true;
  const record = () => document.querySelectorAll('#job-rows tr[data-status]').forEach(row => {
    const seen = window.__statuses[row.id] = window.__statuses[row.id] || [];
    if (seen[seen.length - 1] !== row.dataset.status) seen.push(row.dataset.status);
  });
  record();
  new MutationObserver(record).observe(document.getElementById('job-rows'), {childList: true, subtree: true});
}"""


def new_key(live: Live, role: str) -> dict[str, Any]:
    status, body = live.request("POST", "/api/v1/keys", {"name": f"{role}-browser", "role": role})
    assert status == 201, body
    return dict(body)


def sign_in(page: Page, live: Live, key: str) -> None:
    page.goto(f"{live.api_url}/ui")
    expect(page).to_have_url(f"{live.api_url}/ui/login?next=/ui")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").press("Enter")


def no_serious_violations(page: Page) -> None:
    found = serious_violations(page)
    assert found == [], f"{page.url}: {found}"


def job_status(live: Live, job_id: str) -> str:
    return str(live.request("GET", f"/api/v1/jobs/{job_id}")[1]["status"])


def wait_api(live: Live, job_id: str, wanted: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (status := job_status(live, job_id)) not in wanted:
        assert time.monotonic() < deadline, f"job {job_id} stayed {status}\n{live.logs()}"
        time.sleep(0.2)
    return status


def test_a_person_follows_jobs_live_retries_a_pr_and_activates_a_diffed_version(
    kafka_bootstrap: str, tmp_path: Path, browser: Browser, shots: Path
) -> None:
    env_extra = {"KAIZEN_OPTIMIZER_CONCURRENCY": "1"}
    with (
        started_host("github") as host,
        ScriptedLLM(delay=0.3) as llm,
        live_system(kafka_bootstrap, tmp_path, env={**scripted_env(llm), **env_extra}) as live,
    ):
        host.refuse_pulls = True
        reader, ingest = new_key(live, "read"), new_key(live, "ingest")
        blocker = create_task(live, threshold=1000, **git_settings(host, "text"))
        watched = create_task(live, threshold=1000)
        status, registered = live.request("POST", f"/api/v1/prompts/{watched}", {"prompt_text": BASELINE})
        assert status == 201, registered
        post_tickets(live, blocker, 25)
        post_tickets(live, watched, 25, seed=2)

        context = browser.new_context()
        page = context.new_page()
        refused = only_local(page, live.api_url)
        policy = policy_violations(page)

        # An ingest key is turned away with a reason; an admin key signs in.
        sign_in(page, live, ingest["key"])
        expect(page.get_by_role("alert")).to_contain_text("ingest key")
        no_serious_violations(page)
        page.screenshot(path=shots / "01-sign-in-refused.png", full_page=True)
        page.get_by_label("API key").fill(live.key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
        cookie = next(c for c in context.cookies() if c["name"] == "kaizen_ui_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and live.key not in cookie["value"]
        expect(page.locator("tbody tr")).to_have_count(2)
        no_serious_violations(page)
        page.screenshot(path=shots / "02-tasks.png", full_page=True)
        page.keyboard.press("Tab")  # keyboard users first meet the skip link
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

        # Jobs page, open before any job exists: both jobs arrive and change live.
        page.get_by_role("link", name="Jobs", exact=True).click()
        expect(page.get_by_role("heading", name="Optimization jobs")).to_be_visible()
        page.evaluate(WATCH_STATUSES)
        status, first = live.request("POST", f"/api/v1/optimize/{blocker}")
        assert status == 200, first
        blocker_job = first["job"]["id"]
        wait_api(live, blocker_job, {"RUNNING", "EVALUATING", "COMPILING"})
        status, second = live.request("POST", f"/api/v1/optimize/{watched}")
        assert status == 200, second
        watched_job = second["job"]["id"]
        watched_row = page.locator(f"#job-{watched_job}")
        expect(watched_row.locator(".status")).to_have_text("PENDING", timeout=30_000)
        assert job_status(live, watched_job) == "PENDING"  # the optimizer's one slot is taken
        page.screenshot(path=shots / "03-jobs-pending.png", full_page=True)
        llm.delay = 0.0
        expect(watched_row.locator(".status")).to_have_text("SUCCESS", timeout=JOB_TIMEOUT_MS)
        expect(page.locator(f"#job-{blocker_job} .status")).to_have_text("PR_FAILED")
        seen = page.evaluate("window.__notReloaded && window.__statuses")
        assert seen, "the page was reloaded"
        watched_seen = seen[f"job-{watched_job}"]
        assert watched_seen[0] == "PENDING" and watched_seen[-1] == "SUCCESS", watched_seen
        no_serious_violations(page)
        page.screenshot(path=shots / "04-jobs-success.png", full_page=True)

        # The job's detail: timeline, scores, usage and a chart with plotted points.
        watched_row.get_by_role("link").click()
        expect(page.locator("#job-status")).to_have_text("SUCCESS")
        chart = page.locator("#trial-chart")
        expect(chart).to_be_visible()
        assert chart.locator("circle.trial").count() >= 1
        drawn = chart.locator("path.best").evaluate("p => p.getTotalLength()")
        assert drawn > 0, "the best-so-far line has no length"
        box = chart.locator("circle.trial").first.bounding_box()
        assert box is not None and box["width"] > 0
        expect(page.locator("#timeline tbody tr").first).to_contain_text("Queued (PENDING)")
        expect(page.locator("#timeline")).to_contain_text("Succeeded")
        expect(page.locator("#usage")).to_contain_text("LLM calls")
        no_serious_violations(page)
        page.screenshot(path=shots / "05-job-detail.png", full_page=True)

        # The PR_FAILED job: a refused retry in plain words, then a retry that opens the PR.
        page.goto(f"{live.api_url}/ui/jobs/{blocker_job}")
        expect(page.locator("#job-status")).to_have_text("PR_FAILED")
        page.get_by_role("button", name="Retry the pull request").click()
        result = page.locator("#action-result")
        expect(result).to_contain_text("Could not retry the pull request", timeout=60_000)
        expect(result).to_contain_text("HTTP 502")
        no_serious_violations(page)
        page.screenshot(path=shots / "06-retry-refused.png", full_page=True)
        host.refuse_pulls = False
        page.get_by_role("button", name="Retry the pull request").click()
        expect(result).to_contain_text("The pull request was opened", timeout=60_000)
        expect(page.locator("#job-status")).to_have_text("SUCCESS")
        expect(page.locator("#pr-link")).to_be_visible()
        assert len(host.pulls(REPO)) == 1
        page.screenshot(path=shots / "07-retry-succeeded.png", full_page=True)
        forged = context.request.post(f"{live.api_url}/ui/jobs/{blocker_job}/cancel", form={"csrf": "forged"})
        assert forged.status == 403 and "not sent from this dashboard" in forged.text()

        # Versions of the watched task: the baseline and the job's draft, diffed, then activated.
        page.goto(f"{live.api_url}/ui/tasks/{watched}/prompts")
        expect(page.locator("#versions tbody tr")).to_have_count(2)
        expect(page.locator("#diff-summary")).to_contain_text("From version 1")
        assert page.locator("#diff tr.add, #diff tr.del").count() >= 1
        no_serious_violations(page)
        page.screenshot(path=shots / "08-diff.png", full_page=True)
        page.get_by_role("button", name="Activate version 2").click()
        expect(page.locator("#action-result")).to_contain_text("Version 2 is now active")
        assert live.request("GET", f"/api/v1/prompts/{watched}")[1]["version_number"] == 2
        page.screenshot(path=shots / "09-activated.png", full_page=True)

        # Events: the log's tail, filtered by type.
        page.goto(f"{live.api_url}/ui/events")
        expect(page.locator("#event-rows")).to_contain_text("kaizen.task.created.v1", timeout=30_000)
        assert "[hidden]" in page.content() and "gAAAA" not in page.content()  # no Git token ciphertext
        page.get_by_label("Event type").select_option("kaizen.job.succeeded.v1")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("#event-rows tr").first).to_be_visible(timeout=30_000)
        types = page.locator("#event-rows tr th").all_inner_texts()
        assert types and set(types) == {"kaizen.job.succeeded.v1"}, types
        no_serious_violations(page)
        page.screenshot(path=shots / "10-events.png", full_page=True)
        assert refused == [], f"requests left the machine: {refused}"
        assert policy == [], policy

        # A read key reads but has no buttons; once revoked its session ends.
        reading = browser.new_context().new_page()
        sign_in(reading, live, reader["key"])
        expect(reading.get_by_role("heading", name="Tasks")).to_be_visible()
        reading.goto(f"{live.api_url}/ui/tasks/{blocker}/prompts")
        expect(reading.locator("#versions")).to_contain_text("admin key needed")  # the job's draft
        expect(reading.get_by_role("button", name=re.compile("^Activate"))).to_have_count(0)
        # The server refuses it too, as the API would, even with the session's own CSRF token.
        draft = live.request("GET", f"/api/v1/prompts/{blocker}/versions")[1][0]["id"]
        token = reading.locator("input[name=csrf]").first.input_value()
        activate = f"{live.api_url}/ui/tasks/{blocker}/prompts/{draft}/activate"
        answer = reading.context.request.post(activate, form={"csrf": token})
        assert answer.status == 403 and "needs an admin key" in answer.text()
        assert live.request("DELETE", f"/api/v1/keys/{reader['id']}")[0] == 204
        reading.reload()
        expect(reading.get_by_role("alert")).to_contain_text("revoked")
        assert not [c for c in reading.context.cookies() if c["name"] == "kaizen_ui_session"]
        anonymous = browser.new_context()
        stream = anonymous.request.get(
            f"{live.api_url}/ui/jobs/stream", headers={"Accept": "text/event-stream"}
        )
        assert stream.status == 204  # signed out: an EventSource stops instead of retrying
        anonymous.close()
        reading.screenshot(path=shots / "11-revoked.png", full_page=True)
        context.close()
