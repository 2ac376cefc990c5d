"""``make bench``: run every benchmark in turn against one local broker."""

from __future__ import annotations

import importlib
import os
import sys

from bench.common import broker

BENCHMARKS = [
    "bench.append_path",
    "bench.api_reads",
    "bench.feedback_path",
    "bench.api_ratio",
    "bench.replay",
    "bench.lag",
    "bench.job_overhead",
    "bench.quality",
]


def main() -> None:
    with broker() as bootstrap:
        os.environ["KAIZEN_KAFKA_BOOTSTRAP"] = bootstrap
        for name in BENCHMARKS:
            print(f"\n== {name} ==", flush=True)
            module = importlib.import_module(name)
            sys.argv = [name]
            module.main()


if __name__ == "__main__":
    main()
