"""The ``kaizen`` CLI as a person uses it, against the live system (every service a process,
the scripted LLM): tasks, a feedback import (twice: nothing doubled), keys, errors in plain
words with exit codes, and, in a real terminal (tmux), the optimize confirmation and
``jobs watch`` following a job live to its terminal status.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.scripted_llm import ScriptedLLM, make_tickets
from tests.support.broker import free_ports
from tests.support.live import Live, live_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]
SMALL_RUN = {"auto": "light", "max_bootstrapped_demos": 2, "max_labeled_demos": 2, "metric": "exact_match"}
KAIZEN = [sys.executable, "-m", "kaizen_cli.main"]


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with (
        ScriptedLLM() as llm,
        live_system(
            kafka_bootstrap,
            tmp_path_factory.mktemp("cli-live"),
            env={
                "KAIZEN_LLM_API_BASE": llm.api_base,
                "KAIZEN_DEFAULT_TEACHER_MODEL": "openai/scripted",
                "KAIZEN_DEFAULT_JUDGE_MODEL": "openai/scripted",
            },
        ) as running,
    ):
        yield running


def cli_env(live: Live, home: Path, key: str | None = None) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")}
    return {**clean, "KAIZEN_URL": live.api_url, "KAIZEN_API_KEY": key or live.key, "KAIZEN_HOME": str(home)}


def kaizen(
    live: Live, tmp_path: Path, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """One CLI run with stdin, stdout and stderr not terminals (as in a script)."""
    done = subprocess.run(
        [*KAIZEN, *args],
        env=cli_env(live, tmp_path, key),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def create_task(live: Live, tmp_path: Path, name: str) -> dict[str, Any]:
    done = kaizen(
        live, tmp_path, "tasks", "create", name, "-f", "ticket", "--threshold", "1000",
        "--evaluator", json.dumps(SMALL_RUN), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    task: dict[str, Any] = json.loads(done.stdout)
    return task


def write_tickets(path: Path, n: int, seed: int = 1) -> None:
    tickets = make_tickets(n, seed)
    rows = [{"inputs": {"ticket": text}, "output": label, "score": 0.9} for text, label in tickets]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def feedback_count(live: Live, task_id: str) -> int:
    status, task = live.request("GET", f"/api/v1/tasks/{task_id}")
    assert status == 200, task
    return int(task["feedback_count"])


def test_tasks_are_created_listed_and_shown_by_name(live: Live, tmp_path: Path) -> None:
    name = f"cli-tasks-{uuid.uuid4().hex[:6]}"
    task = create_task(live, tmp_path, name)
    assert task["name"] == name and task["schema_json"] == ["ticket"]
    listed = kaizen(live, tmp_path, "tasks", "list", "--json")
    assert listed.returncode == 0 and name in [t["name"] for t in json.loads(listed.stdout)]
    shown = kaizen(live, tmp_path, "tasks", "show", name)
    assert shown.returncode == 0, shown.stderr
    assert name in shown.stdout and task["id"] in shown.stdout and "ticket" in shown.stdout
    # Not a terminal: no colour codes in what a script reads.
    assert "\x1b[" not in shown.stdout
    again = kaizen(live, tmp_path, "tasks", "create", name)
    assert again.returncode == 1 and "409" in again.stderr and name in again.stderr


def test_a_feedback_import_reports_refused_lines_and_a_second_run_writes_nothing_twice(
    live: Live, tmp_path: Path
) -> None:
    task = create_task(live, tmp_path, f"cli-import-{uuid.uuid4().hex[:6]}")
    path = tmp_path / "feedback.jsonl"
    write_tickets(path, 23)
    with path.open("a") as f:
        f.write("{broken\n")  # line 24: refused before sending
        wrong_input = {"inputs": {"customer": "x"}, "output": "it", "score": 1}
        f.write(json.dumps(wrong_input) + "\n")  # line 25: refused by the server
    first = kaizen(
        live, tmp_path, "feedback", "import", str(path), "--task", task["name"], "--chunk-size", "7"
    )
    assert first.returncode == 1, first.stderr
    assert "23 accepted, 2 refused" in first.stdout
    assert re.findall(r"^│ (\d+) +│", first.stdout, re.MULTILINE) == ["24", "25"], first.stdout
    assert feedback_count(live, task["id"]) == 23
    again = kaizen(
        live, tmp_path, "feedback", "import", str(path), "-t", task["id"], "--chunk-size", "7", "--json"
    )
    report = json.loads(again.stdout)
    assert (report["rows"], report["accepted"]) == (25, 23)
    assert [(r["line"], r["status"]) for r in report["refused"]] == [(24, None), (25, 422)]
    assert feedback_count(live, task["id"]) == 23  # the same chunks, the same keys: replayed
    csv_file = tmp_path / "more.csv"
    csv_file.write_text("ticket,output,score\nMy invoice is wrong,finance,0.8\nVPN is down,it,0.7\n")
    done = kaizen(live, tmp_path, "feedback", "import", str(csv_file), "--task", task["name"])
    assert done.returncode == 0 and "2 accepted, 0 refused" in done.stdout
    assert feedback_count(live, task["id"]) == 25


def test_keys_are_created_listed_and_revoked_and_a_revoked_key_is_refused(live: Live, tmp_path: Path) -> None:
    name = f"cli-key-{uuid.uuid4().hex[:6]}"
    created = kaizen(live, tmp_path, "keys", "create", name, "--role", "read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("kaizen_") and "\n" not in key and "shown once" in created.stderr
    listed = json.loads(kaizen(live, tmp_path, "keys", "list", "--json").stdout)
    [info] = [k for k in listed if k["name"] == name]
    assert info["role"] == "read" and info["status"] == "active" and "key" not in info
    assert kaizen(live, tmp_path, "tasks", "list", key=key).returncode == 0
    assert kaizen(live, tmp_path, "keys", "revoke", info["prefix"]).returncode == 0
    deadline = time.monotonic() + 30
    while (refused := kaizen(live, tmp_path, "tasks", "list", key=key)).returncode == 0:
        assert time.monotonic() < deadline, "the revoked key is still accepted"
        time.sleep(0.5)
    assert refused.returncode == 1 and "401" in refused.stderr and "KAIZEN_API_KEY" in refused.stderr


def test_errors_are_plain_words_with_exit_codes_never_tracebacks(live: Live, tmp_path: Path) -> None:
    missing = kaizen(live, tmp_path, "jobs", "show", str(uuid.uuid4()))
    assert missing.returncode == 1 and "Not Found" in missing.stderr and "404" in missing.stderr
    unnamed = kaizen(live, tmp_path, "tasks", "show", "no-such-task-name")
    assert unnamed.returncode == 1 and "no-such-task-name" in unnamed.stderr
    [closed] = free_ports(1)
    down = kaizen(live, tmp_path, "tasks", "list", "--url", f"http://127.0.0.1:{closed}")
    assert down.returncode == 3 and "Cannot reach the Kaizen API" in down.stderr
    watch_down = kaizen(live, tmp_path, "jobs", "watch", str(uuid.uuid4()), "--reconnect", "0",
                        "--url", f"http://127.0.0.1:{closed}")  # fmt: skip
    assert watch_down.returncode == 3
    # No terminal to ask on, no --yes: nothing is started.
    task = create_task(live, tmp_path, f"cli-noyes-{uuid.uuid4().hex[:6]}")
    refused = kaizen(live, tmp_path, "optimize", task["name"])
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert live.request("GET", f"/api/v1/jobs?task_id={task['id']}")[1] == []


# --- in a terminal: tmux ------------------------------------------------------------------


class Terminal:
    """A tmux server of our own (its own socket) running one shell command in an 160×40 pane."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"kaizen-cli-{uuid.uuid4().hex[:8]}"
        self.env = env

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def run(self, command: str) -> None:
        # The exit code is printed after the command, and the pane stays open to be read.
        line = f"{command}; echo __exit=$?; sleep 600"
        self.tmux("new-session", "-d", "-s", "cli", "-x", "160", "-y", "40", "-c", str(REPO), line)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "cli")

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (screen := self.screen()):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the terminal shows:\n{self.screen()}")

    def exit_code(self, timeout: float) -> int:
        screen = self.wait_for("__exit=", timeout)
        return int(screen.split("__exit=")[1].split()[0])

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True)


@pytest.fixture
def terminal(live: Live, tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/system-deps.sh installs it)")
    term = Terminal({**cli_env(live, tmp_path), "TERM": "xterm-256color"})
    try:
        yield term
    finally:
        term.close()


def command(*args: str) -> str:
    return shlex.join([*KAIZEN, *args])


def test_optimize_asks_first_and_jobs_watch_follows_the_job_live_to_success(
    live: Live, tmp_path: Path, terminal: Terminal
) -> None:
    task = create_task(live, tmp_path, f"cli-watch-{uuid.uuid4().hex[:6]}")
    tickets = tmp_path / "tickets.jsonl"
    write_tickets(tickets, 25, seed=3)
    assert kaizen(live, tmp_path, "feedback", "import", str(tickets), "-t", task["id"]).returncode == 0

    terminal.run(command("optimize", task["name"]))
    terminal.wait_for("Start an optimization job", 60)
    terminal.tmux("send-keys", "-t", "cli", "n", "Enter")
    assert terminal.exit_code(30) == 1
    assert "Nothing started" in terminal.screen()
    assert live.request("GET", f"/api/v1/jobs?task_id={task['id']}")[1] == []
    terminal.tmux("kill-session", "-t", "cli")

    terminal.run(command("optimize", task["name"]))
    terminal.wait_for("Start an optimization job", 60)
    terminal.tmux("send-keys", "-t", "cli", "y", "Enter")
    assert terminal.exit_code(60) == 0, terminal.screen()
    screen = terminal.screen()
    assert "cost estimate" in screen and "estimated cost" in screen and "$0.0000" in screen, screen
    [job] = live.request("GET", f"/api/v1/jobs?task_id={task['id']}")[1]
    assert f"kaizen jobs watch {job['id']}" in screen
    terminal.tmux("kill-session", "-t", "cli")

    terminal.run(command("jobs", "watch", job["id"]))
    seen = terminal.wait_for("trial", 240)  # the live view, while the job runs
    code = terminal.exit_code(300)
    final = terminal.screen()
    _, done = live.request("GET", f"/api/v1/jobs/{job['id']}")
    assert done["status"] == "SUCCESS", done
    assert code == 0, final
    assert "SUCCESS" in final and "best score" in final and "stage" in final, final
    trials = done["job_metadata"]["trials_completed"]
    assert f"{trials}/" in final, final
    assert "status" in seen

    # After the job: a script's view of it, the prompt it made, and a PR retry it cannot have.
    listed = json.loads(kaizen(live, tmp_path, "jobs", "list", "-t", task["name"], "--json").stdout)
    assert [j["id"] for j in listed] == [job["id"]]
    shown = kaizen(live, tmp_path, "jobs", "show", job["id"])
    assert shown.returncode == 0 and "optimized score" in shown.stdout
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(b"Route each ticket to a team.\n")
    pushed = kaizen(live, tmp_path, "prompts", "push", task["name"], str(prompt))
    assert pushed.returncode == 0 and "active, source user" in pushed.stdout, pushed.stdout
    pulled = kaizen(live, tmp_path, "prompts", "pull", task["name"])
    assert pulled.returncode == 0 and pulled.stdout == prompt.read_text()
    retry = kaizen(live, tmp_path, "jobs", "retry-pr", job["id"])
    assert retry.returncode == 1 and "409" in retry.stderr and "PR_FAILED" in retry.stderr
    # Watching an ended job prints its final state at once, with the same exit code.
    assert kaizen(live, tmp_path, "jobs", "watch", job["id"]).returncode == 0


def test_a_cancelled_job_is_watched_to_failed_with_its_exit_code(live: Live, tmp_path: Path) -> None:
    task = create_task(live, tmp_path, f"cli-cancel-{uuid.uuid4().hex[:6]}")
    tickets = tmp_path / "tickets.jsonl"
    write_tickets(tickets, 25, seed=4)
    assert kaizen(live, tmp_path, "feedback", "import", str(tickets), "-t", task["name"]).returncode == 0
    started = kaizen(live, tmp_path, "optimize", task["id"], "--yes", "--json")
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["job"]["id"]
    cancelled = kaizen(live, tmp_path, "jobs", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    watched = kaizen(live, tmp_path, "jobs", "watch", job_id, "--json")
    final = json.loads(watched.stdout)
    assert final["status"] == "FAILED" and watched.returncode == 4, watched.stdout
    again = kaizen(live, tmp_path, "jobs", "cancel", job_id)
    assert again.returncode == 1 and "409" in again.stderr
