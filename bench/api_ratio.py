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

CPU per request: around every measured run, the CPU time (user + system, from
``/proc/<pid>/stat``) of each process involved is read before and after: for Kaizen the API,
the projector and the broker (the java process this script started; left out with
``KAIZEN_KAFKA_BOOTSTRAP``), for bare the bare app, and for both wrk itself. Each run's
figures are followed by a line ``cpu per request: api 1.12 ms, projector 0.31 ms, broker
0.52 ms, wrk 0.08 ms; total 2.03 ms (1.23 cores busy)``: CPU milliseconds per request by
process, their sum, and the cores that CPU kept busy during the run. The summary adds a
table of the same figures pooled over the rounds, and per route a line saying how many cores
Kaizen's processes would need at 0.5x the bare app's rate (issue 10's target; the sum of
their CPU per request times that rate), next to ``os.cpu_count()``. Every process shares
the same cores, so a target that needs more cores than the machine has is bounded by CPU,
not by waiting (``bench.cpu``).

``--profile DIR`` adds one more run per route with ``py-spy record --pid <api>`` attached
(``pip install py-spy``, only for measuring) on the first read model and prints where the
API process spends its samples; the collapsed stacks stay in ``DIR`` for a flame-graph
viewer. py-spy runs blocking (without ``--nonblocking``): it pauses the API for each sample,
so every stack is whole, and the pauses slow that run, so the profiled runs are not part of
the ratios.

The read models, the broker and the processes' logs live in directories under ``/tmp``
(``kaizen-bench-*``, ``kaizen-wrk-*``), removed when the script ends unless ``--keep``.

Modules: ``bench.wrk`` (wrk and its Lua script), ``bench.ratio_setups`` (the read models and
routes), ``bench.ab`` (pairs, growth, tables), ``bench.profiling`` (py-spy); here, the A/B
alternation and the command line.

    .venv/bin/python -m bench.api_ratio [--seconds 10] [--rounds 2] [--connections 16]
        [--jobs 7] [--databases sqlite] [--routes feedback,jobs,job,task] [--profile DIR] [--keep]
    .venv/bin/python -m bench.api_ratio --jobs 1000,100000 --databases sqlite,postgresql --routes jobs,job
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path

from bench.ab import Pair, cpu_line, table
from bench.common import broker, broker_pid, tool
from bench.feedback_path import Services, processes
from bench.profiling import hot_spots, py_spy
from bench.ratio_setups import Setup, filled, prepare, routes_for
from bench.scratch import add_keep, cleaned_up, scratch_dir
from bench.wrk import Route, wrk, wrk_script

JOBS = 7  # the default read model: a page of the job list smaller than one full page
ROUTES = ("feedback", "jobs", "job", "task")


def measure(
    setups: list[Setup], names: list[str], args: argparse.Namespace, kafka: int | None
) -> dict[tuple[str, str], Pair]:
    """Per route, per round: each read model's bare app, then its API. Returns the runs by route and model.

    ``kafka``: the broker's pid, counted with the API's processes (None: a broker not ours).
    """
    scripts = scratch_dir("kaizen-wrk-")
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
                assert setup.running is not None
                pair = pairs.setdefault((route.label, setup.label), Pair())
                bare_pids = {"bare": setup.running.bare_pid}
                ours_pids = {"api": setup.running.api_pid, "projector": setup.running.projector_pid}
                ours_pids |= {"broker": kafka} if kafka is not None else {}
                pair.bare.append(wrk(bare_url, bare_script, args.seconds, args.connections, bare_pids))
                print(f"{route.label:26} {setup.label:28} bare   {pair.bare[-1]}", flush=True)
                print(f"{route.label:26} {setup.label:28} bare   {cpu_line(pair.bare[-1])}", flush=True)
                pair.ours.append(wrk(ours_url, ours_script, args.seconds, args.connections, ours_pids))
                print(f"{route.label:26} {setup.label:28} Kaizen {pair.ours[-1]}", flush=True)
                print(f"{route.label:26} {setup.label:28} Kaizen {cpu_line(pair.ours[-1])}", flush=True)
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
    add_keep(parser)
    args = parser.parse_args()
    sizes = [int(n) for n in args.jobs.split(",")]
    databases = args.databases.split(",")
    names = args.routes.split(",")
    if unknown := set(databases) - {"sqlite", "postgresql"} | set(names) - set(ROUTES):
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    for name in ["wrk"] + (["py-spy"] if args.profile else []):
        tool(name)
    with cleaned_up(args.keep), broker() as bootstrap, contextlib.ExitStack() as stack:
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
        if (kafka := broker_pid(bootstrap)) is None:
            print("the broker is not one this script started: its CPU is not counted", flush=True)
        labels = [route.label for route in routes_for(setups[0], names)]
        table(setups, labels, measure(setups, names, args, kafka))


if __name__ == "__main__":
    main()
