"""The API's per-request cost as a ratio to a bare FastAPI app, measured with wrk in one run.

The real API process (with the projector and the broker behind it) and a bare FastAPI
app (one uvicorn worker; it validates the same feedback body and returns 201, or a
constant answer of the same shape for reads) are loaded alternately, A/B/A/B, by the same
load generator: ``wrk -t1 -c16`` for ``--seconds`` each. wrk is written in C, so it does
not saturate a core before the servers do, which a Python client would
(``notes/measuring.md``). Routes (``--routes``):

- ``feedback``: ``POST /api/v1/feedback``, answered after Kafka acked and the projector applied it;
- ``jobs``: ``GET /api/v1/jobs?limit=50``; the bare app answers ``min(50, N)`` copies of one
  real job as the API answered it (validated through ``JobResponse`` per request, like the
  API's), as many entries as the API's page; the byte sizes of both answers are printed;
- ``job``: ``GET /api/v1/jobs/{id}``, a different real job id per request (wrk's Lua
  ``request()`` cycles through ``IDS`` ids drawn from the read model); the bare app answers
  that real job with the id asked for;
- ``task``: ``GET /api/v1/tasks/{id}`` of the task the POST runs fill.

Read models (``--jobs``, ``--databases``): each size on each database is its own read model,
filled before the measurement through the real projector with ``bench.api_reads``'s job
histories (requested → … → SUCCESS / FAILED / PR opened / PR failed over ``N / 100`` tasks,
at most 1,000), on its own topic prefix, then served by its own API and projector
processes. All of them run at once; per route and round, each read model's bare app and API
are loaded in turn, so every ratio compares runs minutes apart at most. With two sizes on a
database, the growth lines compare the largest with the smallest (issue 10: "no figure
degrades by more than 10 %"): Kaizen's req/s, p50 and p99, and its ratio to bare, which
cancels most of the machine's changing load. PostgreSQL: ``--postgres URL`` (a server's
``…/postgres`` URL; each read model gets a new database on it), else a throwaway server from
Debian's binaries, as the tests start one (``tests/support/postgres.py``).

``--profile DIR`` adds one more run per route with ``py-spy record --pid <api>`` attached
(``pip install py-spy``, only for measuring) on the first read model and prints where the
API process spends its samples; the collapsed stacks stay in ``DIR`` for a flame-graph
viewer. The profiled runs are not part of the ratios.

    .venv/bin/python -m bench.api_ratio [--seconds 10] [--rounds 2] [--connections 16]
        [--jobs 7] [--databases sqlite] [--routes feedback,jobs,job,task] [--profile DIR]
    .venv/bin/python -m bench.api_ratio --jobs 1000,100000 --databases sqlite,postgresql --routes jobs,job
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.api_reads import History, fill_through_the_projector, job_history
from bench.common import BOOTSTRAP_HEADER, broker, new_database
from bench.feedback_path import PARTITIONS, TICKET, Services, processes, until
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.readmodel.db import create_schema, make_engine

JOBS = 7  # the default read model: a page of the job list smaller than one full page
IDS = 1000  # distinct job ids wrk cycles through for GET /api/v1/jobs/{id}
ROUTES = ("feedback", "jobs", "job", "task")
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
    """One request, as wrk sends it to both servers; with ``paths``, each request takes the next."""

    label: str
    slug: str  # names the profile's file
    method: str
    path: str
    body: str | None = None
    paths: tuple[str, ...] = ()


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


@dataclass
class Setup:
    """One read model under test: its database, how many jobs it holds, the processes serving it."""

    database: str  # "sqlite" or "postgresql"
    jobs: int
    db_url: str
    prefix: str
    home: Path
    history: History
    running: Services | None = None
    key: str = ""
    task_id: str = ""

    @property
    def label(self) -> str:
        return f"{self.database}, {self.jobs:,} jobs"


@dataclass
class Pair:
    """The runs of one route on one read model: bare and Kaizen, alternating."""

    bare: list[Run] = field(default_factory=list)
    ours: list[Run] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return mean_rate(self.ours) / mean_rate(self.bare)


def mean_rate(runs: list[Run]) -> float:
    return statistics.mean(r.rate for r in runs)


def growth(small: Pair, large: Pair) -> dict[str, float]:
    """Large over small, per figure: req/s, p50, p99 (means over the rounds), and ratio to bare.

    Below 1 for req/s or the ratio, above 1 for a latency, means the large read model is slower.
    """
    return {
        "rate": mean_rate(large.ours) / mean_rate(small.ours),
        "p50": statistics.mean(r.p50_ms for r in large.ours) / statistics.mean(r.p50_ms for r in small.ours),
        "p99": statistics.mean(r.p99_ms for r in large.ours) / statistics.mean(r.p99_ms for r in small.ours),
        "ratio": large.ratio / small.ratio,
    }


def tool(name: str) -> str:
    """The executable ``name``, also looked for beside this Python (py-spy lives in the venv)."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        hint = "scripts/system-deps.sh installs wrk; pip install py-spy"
        raise SystemExit(f"{name} is not installed ({hint})")
    return found


def lua_string(text: str) -> str:
    """``text`` as a Lua string literal: JSON's escapes are Lua's, once non-ASCII stays as UTF-8."""
    return json.dumps(text, ensure_ascii=False)


def wrk_script(route: Route, key: str | None, directory: Path) -> Path:
    """A Lua script that sends ``route`` (with the key, for the API) and reports through ``done``."""
    lines = [f"wrk.method = {lua_string(route.method)}"]
    if route.body is not None:
        lines += [f"wrk.body = {lua_string(route.body)}", 'wrk.headers["Content-Type"] = "application/json"']
    if key is not None:
        lines.append(f'wrk.headers["X-API-Key"] = {lua_string(key)}')
    if route.paths:
        lines.append("local paths = {" + ", ".join(lua_string(p) for p in route.paths) + "}")
        lines += [
            "local n = 0",
            "request = function()",
            "  n = n + 1",
            "  return wrk.format(nil, paths[n % #paths + 1])",
            "end",
        ]
    path = directory / f"{uuid.uuid4().hex}.lua"
    path.write_text("\n".join(lines) + DONE_HOOK)
    return path


def parse_wrk(output: str, load: float) -> Run:
    """The figures ``DONE_HOOK`` printed, from wrk's whole standard output."""
    line = next((line for line in output.splitlines() if line.startswith("WRK ")), None)
    if line is None:
        raise ValueError(f"wrk printed no WRK line:\n{output[-2000:]}")
    return Run(**json.loads(line[4:]), load=load)


def wrk(url: str, script: Path, seconds: int, connections: int) -> Run:
    load = os.getloadavg()[0]
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), url]
    return parse_wrk(subprocess.run(command, check=True, capture_output=True, text=True).stdout, load)


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


async def filled(bootstrap: str, database: str, jobs: int, server: str | None) -> Setup:
    """A new read model holding ``jobs`` job histories, folded by the projector from their own topics."""
    prefix = f"bench-ratio-{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    await ensure_topics(bootstrap, topics, partitions=PARTITIONS)
    home = Path(tempfile.mkdtemp(prefix="kaizen-bench-ratio-"))
    if database == "sqlite":
        db_url = f"sqlite+aiosqlite:///{home / 'readmodel.db'}"
    else:
        assert server is not None
        db_url = await new_database(server, f"bench_ratio_{prefix.rsplit('-', 1)[1]}")
    engine = make_engine(db_url)
    try:
        await create_schema(engine)
    finally:
        await engine.dispose()
    history = History()
    tasks = max(1, min(1000, jobs // 100))
    print(f"{database}, {jobs:,} jobs over {tasks} tasks: filling through the projector", flush=True)
    await fill_through_the_projector(bootstrap, topics, db_url, job_history(history, jobs, tasks))
    return Setup(database, jobs, db_url, prefix, home, history)


async def prepare(setup: Setup) -> None:
    """A key and a task through the API; then one answer of each read route, to compare sizes."""
    assert setup.running is not None
    async with (
        httpx.AsyncClient(base_url=setup.running.api_url, timeout=60) as api,
        httpx.AsyncClient(base_url=setup.running.bare_url, timeout=60) as bare,
    ):
        await until(lambda: bare.get("/docs"), 200)
        response = await until(
            lambda: api.post("/api/v1/keys/bootstrap", json={"name": "bench"}, headers=BOOTSTRAP_HEADER), 201
        )
        response.raise_for_status()
        api.headers["X-API-Key"] = setup.key = response.json()["key"]
        task = {"name": "bench-ratio", "schema_json": ["ticket"], "feedback_threshold": 10**9}
        response = await api.post("/api/v1/tasks", json=task)
        response.raise_for_status()
        setup.task_id = response.json()["id"]
        job = f"/api/v1/jobs/{setup.history.jobs[-1]}"
        # The bare app answers with this real job from now on, so both answers are about the same size.
        real = await api.get(job)
        real.raise_for_status()
        headers = {"Content-Type": "application/json"}
        (await bare.put("/bench/job", content=real.content, headers=headers)).raise_for_status()
        for path in ["/api/v1/jobs?limit=50", job]:
            ours, theirs = await api.get(path), await bare.get(path)
            ours.raise_for_status()
            theirs.raise_for_status()
            print(
                f"{setup.label}: GET {path.replace(job, '/api/v1/jobs/{id}')} answers "
                f"{len(ours.content):,} bytes, bare {len(theirs.content):,} bytes",
                flush=True,
            )
        page = (await api.get("/api/v1/jobs", params={"limit": 50})).json()
        if len(page) != min(50, setup.jobs):
            raise RuntimeError(f"the job list shows {len(page)} jobs, not {min(50, setup.jobs)}")


def routes_for(setup: Setup, names: list[str]) -> list[Route]:
    feedback = {"task_id": setup.task_id, "inputs": TICKET, "output": "finance", "score": 0.9}
    ids = random.Random(11).sample(setup.history.jobs, min(IDS, len(setup.history.jobs)))
    every = {
        "feedback": Route(
            "POST /api/v1/feedback", "post-feedback", "POST", "/api/v1/feedback", json.dumps(feedback)
        ),
        "jobs": Route("GET /api/v1/jobs?limit=50", "get-jobs", "GET", "/api/v1/jobs?limit=50"),
        "job": Route(
            "GET /api/v1/jobs/{id}",
            "get-job",
            "GET",
            "/api/v1/jobs",
            paths=tuple(f"/api/v1/jobs/{j}" for j in ids),
        ),
        "task": Route("GET /api/v1/tasks/{id}", "get-task", "GET", f"/api/v1/tasks/{setup.task_id}"),
    }
    return [every[name] for name in names]


def measure(setups: list[Setup], names: list[str], args: argparse.Namespace) -> dict[tuple[str, str], Pair]:
    """Per route, per round: each read model's bare app, then its API. Returns the runs by route and model."""
    scripts = Path(tempfile.mkdtemp(prefix="kaizen-wrk-"))
    print(f"wrk -t1 -c{args.connections}, {args.seconds} s per run, {args.rounds} A/B rounds", flush=True)
    pairs: dict[tuple[str, str], Pair] = {}
    for n in range(len(names)):
        plan = []
        for setup in setups:
            assert setup.running is not None
            route = routes_for(setup, names)[n]
            ours_url, bare_url = setup.running.api_url + route.path, setup.running.bare_url + route.path
            ours_script, bare_script = wrk_script(route, setup.key, scripts), wrk_script(route, None, scripts)
            # One short run each first: connections, caches and the projector's assignment warm up.
            wrk(bare_url, bare_script, 2, args.connections)
            wrk(ours_url, ours_script, 2, args.connections)
            plan.append((setup, route, ours_url, ours_script, bare_url, bare_script))
        for _ in range(args.rounds):
            for setup, route, ours_url, ours_script, bare_url, bare_script in plan:
                pair = pairs.setdefault((route.label, setup.label), Pair())
                pair.bare.append(wrk(bare_url, bare_script, args.seconds, args.connections))
                print(f"{route.label:26} {setup.label:28} bare   {pair.bare[-1]}", flush=True)
                pair.ours.append(wrk(ours_url, ours_script, args.seconds, args.connections))
                print(f"{route.label:26} {setup.label:28} Kaizen {pair.ours[-1]}", flush=True)
        for setup, route, *_ in plan:
            pair = pairs[(route.label, setup.label)]
            print(
                f"{route.label:26} {setup.label:28} ratio  {pair.ratio:.3f}x throughput (Kaizen / bare)",
                flush=True,
            )
        if args.profile:
            setup, route, ours_url, ours_script, *_ = plan[0]
            assert setup.running is not None
            profile(setup.running, route, ours_url, ours_script, args)
    return pairs


def table(setups: list[Setup], names: list[str], pairs: dict[tuple[str, str], Pair]) -> None:
    """All figures again as Markdown, then the growth of each database's largest over its smallest."""
    print("\n| route | read model | bare req/s | Kaizen req/s | Kaizen p50 / p99 ms | ratio | load |")
    print("|---|---|---|---|---|---|---|")
    labels = [routes_for(setups[0], names)[n].label for n in range(len(names))]
    for label in labels:
        for setup in setups:
            pair = pairs[(label, setup.label)]
            loads = [r.load for r in pair.bare + pair.ours]
            print(
                f"| `{label}` | {setup.label} | {' / '.join(f'{r.rate:,.0f}' for r in pair.bare)} "
                f"| {' / '.join(f'{r.rate:,.0f}' for r in pair.ours)} "
                f"| {' / '.join(f'{r.p50_ms:.1f}' for r in pair.ours)} ; "
                f"{' / '.join(f'{r.p99_ms:.1f}' for r in pair.ours)} "
                f"| **{pair.ratio:.3f}×** | {min(loads):.1f}–{max(loads):.1f} |"
            )
    databases = sorted({s.database for s in setups})
    grown = [(d, [s for s in setups if s.database == d]) for d in databases]
    grown = [(d, sorted(group, key=lambda s: s.jobs)) for d, group in grown if len(group) > 1]
    if not grown:
        return
    print(
        "\n| route | database | jobs | req/s large / small | p50 large / small | p99 large / small "
        "| ratio to bare, large / small |"
    )
    print("|---|---|---|---|---|---|---|")
    for label in labels:
        for database, group in grown:
            small, large = group[0], group[-1]
            g = growth(pairs[(label, small.label)], pairs[(label, large.label)])
            print(
                f"| `{label}` | {database} | {small.jobs:,} → {large.jobs:,} | {g['rate']:.3f} "
                f"| {g['p50']:.3f} | {g['p99']:.3f} | **{g['ratio']:.3f}** |"
            )


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
    parser.add_argument(
        "--jobs", default=str(JOBS), help="Jobs in the read model; several: e.g. 1000,100000."
    )
    parser.add_argument("--databases", default="sqlite", help="sqlite, postgresql or both (comma-separated).")
    parser.add_argument(
        "--postgres", metavar="URL", help="A PostgreSQL server's …/postgres URL (default: start one)."
    )
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"Some of {','.join(ROUTES)}.")
    parser.add_argument("--profile", metavar="DIR", help="Also profile the API with py-spy, stacks in DIR.")
    args = parser.parse_args()
    sizes = [int(n) for n in args.jobs.split(",")]
    databases = args.databases.split(",")
    names = args.routes.split(",")
    if unknown := set(databases) - {"sqlite", "postgresql"} | set(names) - set(ROUTES):
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    for name in ["wrk"] + (["py-spy"] if args.profile else []):
        tool(name)
    with broker() as bootstrap, contextlib.ExitStack() as stack:
        server = args.postgres
        if "postgresql" in databases and server is None:
            from tests.support.postgres import postgres_server

            server = stack.enter_context(postgres_server())
        setups = [asyncio.run(filled(bootstrap, d, jobs, server)) for d in databases for jobs in sizes]
        for setup in setups:
            setup.running = stack.enter_context(
                processes(bootstrap, setup.prefix, setup.home, setup.db_url, setup.jobs)
            )
            asyncio.run(prepare(setup))
        print(
            f"{os.cpu_count()} CPUs; API pids "
            + ", ".join(f"{s.label}: {s.running.api_pid}" for s in setups if s.running),
            flush=True,
        )
        table(setups, names, measure(setups, names, args))


if __name__ == "__main__":
    main()
