"""CPU per request: what each process of a benchmark spent during a run, and what a target rate needs.

On a 2-core machine the API, the projector, the broker and the load generator share the
cores, so a throughput figure alone does not say what bounds it. Sampling each process's CPU
time (user + system, all threads, from ``/proc/<pid>/stat``) before and after a run, and
dividing by the requests (or items) the run served, gives each process's cost per unit; the
sum times a target rate is the CPU rate that target needs (issue 10: feedback at 0.5x of a
bare app, batch ingestion at 20,000 items/s), to compare with ``os.cpu_count()``.

A cost includes whatever else the process did during the run (heartbeats, a fold of other
partitions), which is what the target would have to pay for too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from bench.profiling import cpu_seconds


def cpu_now(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds each process (by name) has spent so far."""
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each process spent between two :func:`cpu_now` samples."""
    return {name: after[name] - before[name] for name in before}


@contextmanager
def metered(pids: Mapping[str, int]) -> Iterator[dict[str, float]]:
    """Yields a dict that holds, once the block ends, the CPU seconds each process spent in it."""
    before = cpu_now(pids)
    used: dict[str, float] = {}
    yield used
    used.update(spent(before, cpu_now(pids)))


def per_unit_ms(cpu: Mapping[str, float], units: int, per: int = 1) -> dict[str, float]:
    """Milliseconds of CPU per ``per`` units (requests, items), by process; NaN if nothing was served."""
    return {name: 1000 * seconds * per / units if units > 0 else math.nan for name, seconds in cpu.items()}


def pooled(runs: Iterable[tuple[Mapping[str, float], int]]) -> tuple[dict[str, float], int]:
    """Several runs' (CPU seconds by process, units) as one: the sums, so a mean weighs runs by units."""
    total: dict[str, float] = {}
    units = 0
    for cpu, n in runs:
        for name, seconds in cpu.items():
            total[name] = total.get(name, 0.0) + seconds
        units += n
    return total, units


def cores_at(ms: Mapping[str, float], rate: float, per: int = 1, leave_out: str = "") -> float:
    """Cores kept busy at ``rate`` units/s by processes costing ``ms`` milliseconds per ``per`` units.

    ``leave_out``: a process not to count, such as the load generator, which a production
    system would not run beside the servers.
    """
    return sum(v for name, v in ms.items() if name != leave_out) / per / 1000 * rate


def listed(ms: Mapping[str, float]) -> str:
    """``api 1.12 ms, projector 0.31 ms``: processes in the order they were measured."""
    return ", ".join(f"{name} {value:.2f} ms" for name, value in ms.items())


def cost_line(
    cpu: Mapping[str, float], units: int, seconds: float, unit: str = "request", per: int = 1
) -> str:
    """``cpu per request: api 1.12 ms, wrk 0.08 ms; total 1.20 ms (1.23 cores busy)``.

    ``seconds``: the run's wall time, so the busy cores are the processes' CPU rate during it.
    """
    ms = per_unit_ms(cpu, units, per)
    label = unit if per == 1 else f"{per:,} {unit}s"
    busy = sum(cpu.values()) / seconds
    return f"cpu per {label}: {listed(ms)}; total {sum(ms.values()):.2f} ms ({busy:.2f} cores busy)"
