"""The API's per-request cost as a ratio to a bare FastAPI app, measured with wrk in one run.

The real API process (with the projector and the broker behind it, SQLite read model)
and a bare FastAPI app (one uvicorn worker; it validates the same feedback body and
returns 201, or a constant answer for reads) are loaded alternately, A/B/A/B, by the
same load generator: ``wrk -t1 -c16`` for ``--seconds`` each. wrk is written in C, so
it does not saturate a core before the servers do, which a Python client would
(``notes/measuring.md``). Routes measured: ``POST /api/v1/feedback`` (answered after
Kafka acked and the projector applied it), ``GET /api/v1/jobs?limit=50`` (7 jobs in
the read model) and ``GET /api/v1/tasks/{id}``. Ratios compare throughput (mean req/s
over the rounds); the machine's 1-minute load average is printed with every run.

``--profile DIR`` adds one more run per route with ``py-spy record --pid <api>``
attached (``pip install py-spy``, only for measuring) and prints where the API process
spends its samples; the collapsed stacks stay in ``DIR`` for a flame-graph viewer. The
profiled runs are not part of the ratios.

    .venv/bin/python -m bench.api_ratio [--seconds 10] [--rounds 2] [--connections 16]
        [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.api_reads import History, add_job
from bench.api_reads import Writer as HistoryWriter
from bench.common import BOOTSTRAP_HEADER, broker
from bench.feedback_path import PARTITIONS, TICKET, Services, processes, until
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventLog

JOBS = 7
# wrk calls done() once at the end; one JSON line is easier to parse than its report.
DONE_HOOK = """
done = function(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'WRK {"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p99_ms": %.3f, "non2xx": %d, "errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status, failed))
end
"""


@dataclass(frozen=True)
class Route:
    """One request, as wrk sends it to both servers."""

    label: str
    slug: str  # names the profile's file
    method: str
    path: str
    body: str | None = None


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    load: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def __str__(self) -> str:
        failed = self.non2xx or self.errors
        failures = f", {self.non2xx} non-2xx, {self.errors} socket errors" if failed else ""
        return (
            f"{self.rate:7.0f} req/s, p50 {self.p50_ms:7.2f} ms, p99 {self.p99_ms:7.2f} ms"
            f" (load {self.load:.2f}){failures}"
        )


def tool(name: str) -> str:
    """The executable ``name``, also looked for beside this Python (py-spy lives in the venv)."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        hint = "scripts/system-deps.sh installs wrk; pip install py-spy"
        raise SystemExit(f"{name} is not installed ({hint})")
    return found


def wrk_script(route: Route, key: str | None, directory: Path) -> Path:
    """A Lua script that sends ``route`` (with the key, for the API) and reports through ``done``."""
    lines = [f'wrk.method = "{route.method}"']
    if route.body is not None:
        lines += [f"wrk.body = [[{route.body}]]", 'wrk.headers["Content-Type"] = "application/json"']
    if key is not None:
        lines.append(f'wrk.headers["X-API-Key"] = "{key}"')
    path = directory / f"{uuid.uuid4().hex}.lua"
    path.write_text("\n".join(lines) + DONE_HOOK)
    return path


def wrk(url: str, script: Path, seconds: int, connections: int) -> Run:
    load = os.getloadavg()[0]
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK "))
    return Run(**json.loads(line[4:]), load=load)


def py_spy(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample the API process for ``seconds`` (threads kept apart, idle samples left out)."""
    command = [tool("py-spy"), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250"]
    command += ["--threads", "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def frame_package(frame: str) -> str:
    """``fn (fastapi/routing.py:12)`` → ``fastapi``; our own code by service: ``services/api``."""
    path = frame.rpartition("(")[2].partition(":")[0]
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0] in ("services", "shared") else parts[0]


def hot_spots(collapsed: Path, top: int = 10) -> list[str]:
    """Where the samples went, in percent of all: per thread, self time per package and per
    function, and our own functions with their callees (how much each route step costs)."""
    threads: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        total += samples
        # "thread (123): Thread-7 (_connection_worker_thread)": one line per kind of thread.
        threads[re.sub(r"\d+", "N", frames[0].partition(": ")[2])] += samples
        leaf = frames[-1] if len(frames) > 1 else "(no Python frame)"
        packages[frame_package(leaf)] += samples
        leaves[leaf] += samples
        for frame in set(frames[1:]):
            if frame_package(frame).startswith(("services/", "shared/")) and "__main__" not in frame:
                ours[frame] += samples
    if not total:
        return ["no samples"]

    def share(counter: Counter[str], n: int) -> str:
        return ", ".join(f"{name} {100 * k / total:.1f}%" for name, k in counter.most_common(n))

    shown = [f"{total} samples; threads: {share(threads, 3)}", f"self time by package: {share(packages, 8)}"]
    shown += [f"self {100 * n / total:5.1f}%  {frame}" for frame, n in leaves.most_common(top)]
    return shown + [f"incl {100 * n / total:5.1f}%  {frame}" for frame, n in ours.most_common(top)]


async def prepare(bootstrap: str, prefix: str, running: Services) -> tuple[str, str]:
    """A key, a task and ``JOBS`` finished jobs in the read model; returns the key and the task id."""
    async with (
        httpx.AsyncClient(base_url=running.api_url, timeout=60) as api,
        httpx.AsyncClient(base_url=running.bare_url, timeout=60) as bare,
    ):
        await until(lambda: bare.get("/docs"), 200)
        response = await until(
            lambda: api.post("/api/v1/keys/bootstrap", json={"name": "bench"}, headers=BOOTSTRAP_HEADER), 201
        )
        response.raise_for_status()
        api.headers["X-API-Key"] = key = response.json()["key"]
        task = {"name": "bench-ratio", "schema_json": ["ticket"], "feedback_threshold": 10**9}
        response = await api.post("/api/v1/tasks", json=task)
        response.raise_for_status()
        task_id = response.json()["id"]
        await append_jobs(bootstrap, prefix, uuid.UUID(task_id))

        async def listed() -> httpx.Response:
            response = await api.get("/api/v1/jobs", params={"limit": 50})
            return response if len(response.json()) >= JOBS else httpx.Response(425)

        (await until(listed, 200)).raise_for_status()
    return key, task_id


async def append_jobs(bootstrap: str, prefix: str, task_id: uuid.UUID) -> None:
    """Finished job histories for the task, appended as the optimizer and publisher emit them."""
    rng = random.Random(7)
    writer = HistoryWriter(History(), datetime.now(UTC) - timedelta(days=1), rng)
    for n in range(JOBS):
        add_job(writer, task_id, n, "success")
    log = EventLog(bootstrap, Topics(prefix), client_id="bench")
    try:
        await log.append_all(writer.take())
    finally:
        await log.stop()


def measure(running: Services, routes: list[Route], key: str, args: argparse.Namespace) -> None:
    scripts = Path(tempfile.mkdtemp(prefix="kaizen-wrk-"))
    print(f"wrk -t1 -c{args.connections}, {args.seconds} s per run, {args.rounds} A/B rounds", flush=True)
    for route in routes:
        ours_script, bare_script = wrk_script(route, key, scripts), wrk_script(route, None, scripts)
        ours_url, bare_url = running.api_url + route.path, running.bare_url + route.path
        # One short run each first: connections, caches and the projector's assignment warm up.
        wrk(bare_url, bare_script, 2, args.connections)
        wrk(ours_url, ours_script, 2, args.connections)
        bare: list[Run] = []
        ours: list[Run] = []
        for _ in range(args.rounds):
            bare.append(wrk(bare_url, bare_script, args.seconds, args.connections))
            print(f"{route.label:28} bare   {bare[-1]}", flush=True)
            ours.append(wrk(ours_url, ours_script, args.seconds, args.connections))
            print(f"{route.label:28} Kaizen {ours[-1]}", flush=True)
        rate = statistics.mean(r.rate for r in ours) / statistics.mean(r.rate for r in bare)
        print(f"{route.label:28} ratio  {rate:.3f}x throughput (Kaizen / bare)", flush=True)
        if args.profile:
            profile(running, route, ours_url, ours_script, args)


def profile(running: Services, route: Route, url: str, script: Path, args: argparse.Namespace) -> None:
    """One more run with py-spy on the API (and, for a write, on the projector it waits for)."""
    pids = {"api": running.api_pid} | ({"projector": running.projector_pid} if route.body else {})
    outs = {name: Path(args.profile) / f"{route.slug}-{name}.txt" for name in pids}
    Path(args.profile).mkdir(parents=True, exist_ok=True)
    samplers = [py_spy(pids[name], args.seconds, out) for name, out in outs.items()]
    run = wrk(url, script, args.seconds, args.connections)
    for sampler in samplers:
        sampler.wait(args.seconds + 30)
    print(f"{route.label:28} Kaizen under py-spy {run}", flush=True)
    for name, out in outs.items():
        print(f"  {name} process, stacks in {out}:", flush=True)
        for line in hot_spots(out):
            print(f"    {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Kaizen vs a bare FastAPI app, side by side, with wrk.")
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds per route.")
    parser.add_argument("--connections", type=int, default=16, help="wrk's -c.")
    parser.add_argument("--profile", metavar="DIR", help="Also profile the API with py-spy, stacks in DIR.")
    args = parser.parse_args()
    for name in ["wrk"] + (["py-spy"] if args.profile else []):
        tool(name)
    with broker() as bootstrap:
        prefix = f"bench-ratio-{uuid.uuid4().hex[:8]}"
        asyncio.run(ensure_topics(bootstrap, Topics(prefix), partitions=PARTITIONS))
        home = Path(tempfile.mkdtemp(prefix="kaizen-bench-ratio-"))
        with processes(bootstrap, prefix, home) as running:
            key, task_id = asyncio.run(prepare(bootstrap, prefix, running))
            feedback = {"task_id": task_id, "inputs": TICKET, "output": "finance", "score": 0.9}
            body = json.dumps(feedback)
            routes = [
                Route("POST /api/v1/feedback", "post-feedback", "POST", "/api/v1/feedback", body),
                Route("GET /api/v1/jobs?limit=50", "get-jobs", "GET", "/api/v1/jobs?limit=50"),
                Route("GET /api/v1/tasks/{id}", "get-task", "GET", f"/api/v1/tasks/{task_id}"),
            ]
            print(f"API pid {running.api_pid}; {os.cpu_count()} CPUs; SQLite read model", flush=True)
            measure(running, routes, key, args)


if __name__ == "__main__":
    main()
