"""The wrk harness of ``bench.api_ratio``: what its Lua script sends, how its report is read, growth.

The script is run by the real wrk against a small recording HTTP server, because a Lua
mistake (a wrong index, a missing header) would otherwise only show as odd figures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from bench.ab import Pair, growth
from bench.wrk import Route, Run, parse_wrk, wrk, wrk_script


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, str | None, bytes]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        Recorder.seen.append((self.command, self.path, self.headers.get("X-API-Key"), body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """wrk drops its connections mid-request when its time is up: not a failure."""


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    httpd = QuietServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def run_wrk(url: str, script: Path) -> str:
    command = ["wrk", "-t1", "-c2", "-d1s", "-s", str(script), url]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout


needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (scripts/system-deps.sh)"
)


@needs_wrk
def test_job_by_id_script_cycles_through_every_id_with_the_key(server: str, tmp_path: Path) -> None:
    paths = tuple(f"/api/v1/jobs/{n}" for n in range(3))
    route = Route("GET /api/v1/jobs/{id}", "get-job", "GET", "/api/v1/jobs", paths=paths)
    output = run_wrk(server + "/", wrk_script(route, "kaizen_secret", tmp_path))
    assert {path for _, path, _, _ in Recorder.seen} == set(paths)
    assert {key for _, _, key, _ in Recorder.seen} == {"kaizen_secret"}
    run = parse_wrk(output, load=1.0)
    assert run.requests >= len(Recorder.seen) - 2  # wrk counts completed requests only
    assert run.non2xx == 0 and run.errors == 0


@needs_wrk
def test_post_script_sends_the_json_body_unchanged_and_no_key_to_the_bare_app(
    server: str, tmp_path: Path
) -> None:
    body = '{"inputs": {"ticket": "say \\"hi\\" [[twice]]"}, "score": 0.9}'
    route = Route("POST /api/v1/feedback", "post-feedback", "POST", "/api/v1/feedback", body)
    run_wrk(server + route.path, wrk_script(route, None, tmp_path))
    assert {(method, path, key, sent) for method, path, key, sent in Recorder.seen} == {
        ("POST", "/api/v1/feedback", None, body.encode())
    }


@needs_wrk
def test_a_wrk_run_carries_the_cpu_of_the_servers_named_to_it_then_its_own(
    server: str, tmp_path: Path
) -> None:
    route = Route("GET /api/v1/jobs?limit=50", "get-jobs", "GET", "/api/v1/jobs?limit=50")
    # The recording server runs in this process: its CPU is this pid's.
    run = wrk(server + route.path, wrk_script(route, None, tmp_path), 1, 2, {"recorder": os.getpid()})
    assert list(run.cpu) == ["recorder", "wrk"]
    assert run.requests > 0 and len(Recorder.seen) >= run.requests
    # Python answering requests for a second costs ticks; nothing can spend more than the wall time
    # on the one thread each runs here (wrk -t1; the recorder's threads are serialized by the GIL).
    assert 0 < run.cpu["recorder"] <= run.seconds + 0.5
    assert 0 <= run.cpu["wrk"] <= run.seconds + 0.5


def test_parse_wrk_reads_the_done_hook_line_among_wrk_s_own_report() -> None:
    output = (
        "Running 10s test @ http://127.0.0.1:1/api/v1/jobs\n  1 threads and 16 connections\n"
        'WRK {"requests": 5000, "seconds": 10.0, "p50_ms": 3.25, "p99_ms": 9.5, "non2xx": 2, "errors": 0}\n'
    )
    run = parse_wrk(output, load=2.5)
    assert run == Run(5000, 10.0, 3.25, 9.5, 2, 0, 2.5)
    assert run.rate == 500


def test_parse_wrk_without_the_hook_line_says_what_wrk_printed() -> None:
    with pytest.raises(ValueError, match="no WRK line"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n", load=0.0)


def run_at(rate: float, p50: float, p99: float) -> Run:
    return Run(int(rate * 10), 10.0, p50, p99, 0, 0, 1.0)


def test_growth_compares_large_with_small_and_cancels_a_slower_machine_in_the_ratio() -> None:
    small = Pair(bare=[run_at(2000, 5, 9)], ours=[run_at(1000, 10, 20), run_at(1000, 10, 20)])
    # The whole machine got half as fast for the large model: the ratio to bare stays put.
    large = Pair(bare=[run_at(1000, 10, 18)], ours=[run_at(500, 20, 40)])
    g = growth(small, large)
    assert g["rate"] == pytest.approx(0.5)
    assert g["p50"] == pytest.approx(2.0)
    assert g["p99"] == pytest.approx(2.0)
    assert g["ratio"] == pytest.approx(1.0)
