"""``kaizen up`` as a newcomer runs it: everything healthy, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.broker import JAR_CACHE, free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and int(entry.name) not in found:
                found.add(int(entry.name))
                frontier.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _get(url: str, key: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_kaizen_up_serves_a_healthy_system_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    kafka_port, controller_port, api_port, llm_port = free_ports(4)
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "lib").symlink_to(JAR_CACHE)  # the jars this machine already fetched
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")},
        "KAIZEN_HOME": str(home),
        "KAIZEN_KAFKA_PORT": str(kafka_port),
        "KAIZEN_KAFKA_CONTROLLER_PORT": str(controller_port),
        "KAIZEN_API_PORT": str(api_port),
        "KAIZEN_LLM_PORT": str(llm_port),
        "KAIZEN_KAFKA_HEAP": "512m",
        "KAIZEN_HEARTBEAT_SECONDS": "1",
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "kaizen_cli.main", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            output.append(line)
            if "First API key" in line or up.poll() is not None:
                break
        assert any("Kaizen is up" in line for line in output), "".join(output)
        key = (home / "first-key.txt").read_text().strip()
        assert key.startswith("kaizen_") and key in "".join(output)
        assert (home / "first-key.txt").stat().st_mode & 0o777 == 0o600
        api = f"http://127.0.0.1:{api_port}"
        health: dict[str, object] = {}
        for _ in range(60):  # heartbeats of all services arrive within a few seconds
            status, health = _get(f"{api}/health")
            if status == 200 and health.get("status") == "ok":
                break
            time.sleep(0.5)
        assert health.get("status") == "ok", health
        assert _get(f"{api}/api/v1/jobs", key)[0] == 200
        started = _children(up.pid)
        assert len(started) >= 5, started  # llm, projector, optimizer, pr-publisher, api (+ workers)
        kafka_pid = int((home / "kafka" / "kafka.pid").read_text())
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(90)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert up.returncode == 0, "".join(output)
    time.sleep(0.5)
    survivors = {pid for pid in [*started, kafka_pid] if _alive(pid)}
    assert not survivors, f"processes left behind: {survivors}"
