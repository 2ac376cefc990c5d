"""``make bench``: issue 10's figures, one benchmark after another, against one local broker.

The default run prints every figure issue 10 asks for, each beside what it is compared
with, in about 50 minutes on the 2-core development machine at load 5–9 (most of it
filling the 100,000-job read models and folding the 1,000,000-event logs):

- the feedback write, the job list of 7 jobs, a job and a task through ``wrk`` beside a bare
  FastAPI app (``bench.api_ratio``);
- the job list and a job by id at 100,000 jobs on SQLite and on PostgreSQL, beside the bare
  app, and the same at 1,000 jobs: the growth from 1,000 to 100,000 jobs (``bench.api_ratio``);
- batch ingestion through the Python client, durable and visible (``bench.client_throughput``;
  the issue's target is absolute, there is no bare reference);
- event → visible lag at 1,000 events/s for 60 s after a log of 10,000 and of 1,000,000
  events, and their ratio (``bench.lag``);
- replay records/s and peak RSS on 10,000 and on 1,000,000 events, SQLite and PostgreSQL
  (``bench.replay``; compare the two runs' records/s for the growth).

``--sizes small`` runs the same on 10 times smaller read models and logs (a few minutes, to
check the harness); ``--all`` adds the older benchmarks (append path, the Python-client read
and write timings, the optimizer's overhead and quality: the last two run real LLM jobs and
take hours). PostgreSQL: ``KAIZEN_BENCH_POSTGRES_URL`` (a server's ``…/postgres`` URL), else a
throwaway server from Debian's binaries, as the tests start one.

Each benchmark removes its read models and logs under ``/tmp`` when it ends, and this
script the broker's; ``--keep`` keeps them all (and passes ``--keep`` on).

    .venv/bin/python -m bench.run_all [--sizes full|small] [--all] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
from collections.abc import Iterator

from bench.common import broker
from bench.scratch import add_keep, cleaned_up

#: (jobs for the growth pair, lag prefills, replay sizes) per ``--sizes``.
SIZES = {
    "full": ("1000,100000", "10000,1000000", ["10000", "1000000"]),
    "small": ("100,10000", "1000,100000", ["1000", "100000"]),
}


def plan(sizes: str, everything: bool, postgres: str) -> list[tuple[str, list[str]]]:
    """The benchmarks to run, in order, each with its command-line arguments."""
    jobs, prefills, replays = SIZES[sizes]
    steps = [
        ("bench.api_ratio", []),
        (
            "bench.api_ratio",
            [
                "--jobs",
                jobs,
                "--databases",
                "sqlite,postgresql",
                "--routes",
                "jobs,job",
                "--postgres",
                postgres,
            ],
        ),
        ("bench.client_throughput", ["--items", "20000"]),
        ("bench.lag", ["--seconds", "60", "--prefill", prefills]),
    ]
    # Replay last: it is the longest-running, and the others do not depend on it.
    steps += [("bench.replay", ["--events", n, "--postgres", postgres]) for n in replays]
    if everything:
        steps += [
            ("bench.append_path", []),
            ("bench.feedback_path", []),
            ("bench.api_reads", []),
            ("bench.job_overhead", []),
            ("bench.quality", []),
        ]
    return steps


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """``KAIZEN_BENCH_POSTGRES_URL``, or a throwaway server for the run."""
    if url := os.environ.get("KAIZEN_BENCH_POSTGRES_URL"):
        yield url
        return
    from tests.support.postgres import postgres_server

    with postgres_server() as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description="Run issue 10's benchmarks (and, with --all, the others).")
    parser.add_argument("--sizes", choices=sorted(SIZES), default="full")
    parser.add_argument("--all", action="store_true", help="Also the older and the hours-long benchmarks.")
    add_keep(parser)
    args = parser.parse_args()
    started = time.monotonic()
    with cleaned_up(args.keep), broker() as bootstrap, postgres() as server:
        os.environ["KAIZEN_KAFKA_BOOTSTRAP"] = bootstrap
        for name, argv in plan(args.sizes, args.all, server):
            print(f"\n== {name} {' '.join(argv)} ==  (load average {os.getloadavg()[0]:.1f})", flush=True)
            module = importlib.import_module(name)
            sys.argv = [name, *argv, *(["--keep"] if args.keep else [])]
            module.main()
    print(f"\nmake bench: {(time.monotonic() - started) / 60:.0f} minutes", flush=True)


if __name__ == "__main__":
    main()
