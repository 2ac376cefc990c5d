"""``kaizen-client`` as an application team uses it: installed into a fresh venv, run
against the live system (every service a process of its own, a scripted LLM).

- the README's example records feedback, triggers a job and waits for it;
- ``feedback()`` stays under 1 ms at p99 on the caller's thread while the server is down,
  and counts what it drops;
- the API is SIGKILLed mid-stream and comes back: everything the client accepted before
  its clean exit is in the read model exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.scripted_llm import ScriptedLLM, make_tickets
from tests.support.broker import free_ports
from tests.support.live import Live, live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "python"
UV = REPO / ".venv" / "bin" / "uv"


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``pip install ./clients/python`` and nothing of the server."""
    venv = tmp_path_factory.mktemp("client-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installer = (
        [str(UV), "pip", "install", "--python", str(python)]
        if UV.exists()
        else [str(python), "-m", "pip", "install"]
    )
    subprocess.run([*installer, str(CLIENT)], check=True, capture_output=True)
    # The venv sees only what it installed: the server's packages are not importable there.
    probe = (
        "import importlib.util as u; "
        "print(u.find_spec('services') is None, u.find_spec('kaizen_client') is not None)"
    )
    checked = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True, cwd="/")
    assert checked.stdout.split() == ["True", "True"]
    return python


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with (
        ScriptedLLM() as llm,
        live_system(
            kafka_bootstrap,
            tmp_path_factory.mktemp("client-live"),
            env={
                "KAIZEN_LLM_API_BASE": llm.api_base,
                "KAIZEN_DEFAULT_TEACHER_MODEL": "openai/scripted",
                "KAIZEN_DEFAULT_JUDGE_MODEL": "openai/scripted",
            },
        ) as running,
    ):
        yield running


def _run(python: Path, script: str, cwd: Path, env: dict[str, str], timeout: float = 400) -> str:
    path = cwd / "app.py"
    path.write_text(script)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAIZEN_", "PYTHON"))}
    done = subprocess.run(
        [str(python), str(path)],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def readme_example() -> str:
    text = (CLIENT / "README.md").read_text()
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match is not None, "the README has no python example"
    return match.group(1)


def test_the_readme_example_records_feedback_triggers_a_job_and_waits_for_it(
    client_python: Path, live: Live, tmp_path: Path
) -> None:
    example = readme_example()
    assert len(example.strip().splitlines()) <= 10
    rows = [{"ticket": text, "team": team} for text, team in make_tickets(25, seed=3)]
    (tmp_path / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    printed = _run(client_python, example, tmp_path, {"KAIZEN_URL": live.api_url, "KAIZEN_API_KEY": live.key})
    lines = printed.splitlines()
    progress = [line.split()[1] for line in lines if line.startswith("progress:")]
    [final] = [line.split()[1] for line in lines if line.startswith("done:")]
    assert final in {"SUCCESS", "FAILED", "PR_FAILED"}, printed
    assert progress and progress[-1] == final, printed
    _, tasks = live.request("GET", "/api/v1/tasks")
    [task] = [t for t in tasks["items"] if t["name"] == "route-tickets"]
    assert task["feedback_count"] == 25
    status, jobs = live.request("GET", f"/api/v1/jobs?task_id={task['id']}")
    assert status == 200 and [j["status"] for j in jobs] == [final]
    if final == "SUCCESS":
        assert jobs[0]["prompt_version_id"] in printed
    # The application then loads its prompt by the task's name (once registered or activated).
    load = (
        "from kaizen_client import Kaizen\n"
        "client = Kaizen()\n"
        f"client.prompts.register({task['id']!r}, 'Route each ticket to a team.')\n"
        "print(client.prompts.active('route-tickets'))\n"
        "print(client.prompts.active('route-tickets'))\n"
    )
    env = {"KAIZEN_URL": live.api_url, "KAIZEN_API_KEY": live.key}
    assert _run(client_python, load, tmp_path, env).splitlines() == ["Route each ticket to a team."] * 2


ASYNC_SCRIPT = """
import asyncio, json
from kaizen_client import AsyncKaizen

async def main():
    async with AsyncKaizen() as client:
        task = await client.tasks.create("route-tickets-async", schema_json=["ticket"])
        for row in map(json.loads, open("tickets.jsonl")):
            client.feedback(task.id, {"ticket": row["ticket"]}, row["team"], score=0.9)
        print("flushed:", await client.aflush(30))
        job = await client.jobs.wait(
            (await client.optimize(task.id)).job.id, on_progress=lambda j: print("progress:", j.status)
        )
        print("done:", job.status, job.prompt_version_id)
        await client.prompts.register(task.id, "Route each ticket to a team.")
        print("active:", await client.prompts.active("route-tickets-async"))
        stats = client.stats
        print("stats:", stats.queued, stats.sent, stats.dropped, stats.failed)

asyncio.run(main())
"""


def test_the_async_client_does_the_same_journey_on_an_event_loop(
    client_python: Path, live: Live, tmp_path: Path
) -> None:
    rows = [{"ticket": text, "team": team} for text, team in make_tickets(25, seed=4)]
    (tmp_path / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    printed = _run(
        client_python, ASYNC_SCRIPT, tmp_path, {"KAIZEN_URL": live.api_url, "KAIZEN_API_KEY": live.key}
    )
    lines = printed.splitlines()
    assert "flushed: True" in lines, printed
    progress = [line.split()[1] for line in lines if line.startswith("progress:")]
    [final] = [line.split()[1] for line in lines if line.startswith("done:")]
    assert final in {"SUCCESS", "FAILED", "PR_FAILED"} and progress[-1] == final, printed
    assert "active: Route each ticket to a team." in lines, printed
    assert "stats: 0 25 0 0" in lines, printed  # nothing queued, 25 sent, none dropped or failed
    _, tasks = live.request("GET", "/api/v1/tasks")
    [task] = [t for t in tasks["items"] if t["name"] == "route-tickets-async"]
    assert task["feedback_count"] == 25


LATENCY_SCRIPT = """
import json, time
from kaizen_client import Kaizen

client = Kaizen("{url}", "kaizen_" + "0" * 32, buffer_size=1000, exit_timeout=0.5)
task = "{task}"
times = []
for n in range(10_000):
    start = time.perf_counter_ns()
    client.feedback(task, {{"ticket": f"t{{n}}"}}, "finance", 0.9, metadata={{"n": n}})
    times.append(time.perf_counter_ns() - start)
times.sort()
stats = client.stats
print(json.dumps({{"p50_ns": times[5000], "p99_ns": times[9900], "max_ns": times[-1],
                  "queued": stats.queued, "dropped": stats.dropped, "sent": stats.sent}}))
"""


def test_feedback_stays_under_a_millisecond_at_p99_while_the_server_is_down(
    client_python: Path, tmp_path: Path
) -> None:
    [closed] = free_ports(1)
    script = LATENCY_SCRIPT.format(url=f"http://127.0.0.1:{closed}", task=uuid.uuid4())
    result = json.loads(_run(client_python, script, tmp_path, {}))
    print(result)
    assert result["p99_ns"] <= 1_000_000, result
    # Nothing reached a server; what did not fit in the buffer is counted, not lost silently.
    assert result["sent"] == 0
    assert result["dropped"] >= 10_000 - 1000 - 500
    assert result["queued"] + result["dropped"] == 10_000


KILL_SCRIPT = """
import atexit, json, sys, time
from kaizen_client import Kaizen

# Registered first, so it runs last: after the client's own exit hook has flushed.
atexit.register(lambda: print(json.dumps(client.stats.__dict__), flush=True))
client = Kaizen(exit_timeout=120, retry_for=120, batch_size=200, flush_interval=0.05)
for n in range({n}):
    client.feedback("{task}", {{"ticket": f"t{{n}}"}}, "finance", 0.9, metadata={{"n": n}})
    if n % 100 == 0:
        print("sent", n, flush=True)
        time.sleep(0.1)
# No flush, no close: the atexit hook delivers what is left.
"""


def test_killing_the_api_mid_stream_loses_nothing_accepted_before_a_clean_exit(
    client_python: Path, live: Live, tmp_path: Path
) -> None:
    n = 3000
    status, task = live.request(
        "POST", "/api/v1/tasks", {"name": f"kill-{uuid.uuid4().hex[:6]}", "feedback_threshold": 100_000}
    )
    assert status == 201, task
    path = tmp_path / "app.py"
    path.write_text(KILL_SCRIPT.format(task=task["id"], n=n))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAIZEN_", "PYTHON"))}
    env = {**clean, "KAIZEN_URL": live.api_url, "KAIZEN_API_KEY": live.key}
    app = subprocess.Popen(
        [str(client_python), str(path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None
        for line in app.stdout:
            if line.startswith("sent") and int(line.split()[1]) >= n // 3:
                break
        live.stop("api", signal.SIGKILL)  # mid-stream: batches in flight lose their answers
        time.sleep(3)
        live.start("api")
        out, err = app.communicate(timeout=300)
    finally:
        if app.poll() is None:
            app.kill()
    assert app.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["dropped"] == 0 and stats["failed"] == 0, stats
    assert stats["sent"] == n and stats["queued"] == 0, stats
    assert stats["retries"] >= 1, stats  # the kill was noticed
    _wait_for_api(live)
    status, shown = live.request("GET", f"/api/v1/tasks/{task['id']}")
    assert status == 200 and shown["feedback_count"] == n, shown  # each exactly once


def _wait_for_api(live: Live, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if live.request("GET", "/health", key=None)[0] in (200, 503):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the API did not come back:\n{live.logs()}")
