"""A/B pairs of wrk runs (a bare app and Kaizen, alternating): their ratio, growth, CPU and tables.

The ratio of Kaizen's throughput to the bare app's, measured minutes apart at most, cancels
most of the shared machine's changing load; growth compares a large read model's figures
with a small one's (issue 10: "no figure degrades by more than 10 %"). The CPU table says
what each process spent per request, pooled over the rounds, and how many cores Kaizen's
processes (API, projector, broker) would keep busy at issue 10's target of 0.5x the bare
app's rate: more than the machine has means that target cannot be reached by removing
waits alone, only by spending less CPU per request.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

from bench.cpu import cores_at, cost_line, listed, per_unit_ms, pooled
from bench.ratio_setups import Setup
from bench.wrk import Run

TARGET = 0.5  # issue 10: feedback writes and the job list at >= 0.5x the bare app
LOAD_GENERATOR = "wrk"


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


def cpu_line(run: Run) -> str:
    """What each process measured in ``run`` spent per request, and the cores they kept busy."""
    return cost_line(run.cpu, run.requests, run.seconds)


def per_request_ms(runs: list[Run]) -> dict[str, float]:
    """CPU milliseconds per request by process over all ``runs`` (total CPU / total requests)."""
    return per_unit_ms(*pooled((r.cpu, r.requests) for r in runs))


def budget(route: str, model: str, ours: dict[str, float], rate: float, cores: int | None) -> str:
    """The cores Kaizen's processes (all of ``ours`` but wrk) would need at ``rate`` req/s."""
    servers = sum(ms for name, ms in ours.items() if name != LOAD_GENERATOR)
    return (
        f"`{route}`, {model}: at {TARGET}x of bare ({rate:,.0f} req/s) Kaizen's processes would need "
        f"{cores_at(ours, rate, leave_out=LOAD_GENERATOR):.2f} cores ({servers:.2f} ms CPU per request "
        f"x {rate:,.0f} req/s; {cores_at(ours, rate):.2f} with wrk's); the machine has {cores} cores"
    )


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


def table(setups: list[Setup], labels: list[str], pairs: dict[tuple[str, str], Pair]) -> None:
    """All figures again as Markdown, then the growth of each database's largest over its smallest."""
    print("\n| route | read model | bare req/s | Kaizen req/s | Kaizen p50 / p99 ms | ratio | load |")
    print("|---|---|---|---|---|---|---|")
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
    growth_table(setups, labels, pairs)
    cpu_table(setups, labels, pairs)


def growth_table(setups: list[Setup], labels: list[str], pairs: dict[tuple[str, str], Pair]) -> None:
    """Each database's largest read model over its smallest, when it has two sizes."""
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


def cpu_table(setups: list[Setup], labels: list[str], pairs: dict[tuple[str, str], Pair]) -> None:
    """CPU ms per request by process, pooled over the rounds, then the cores the target would need."""
    print("\n| route | read model | bare: CPU per request | Kaizen: CPU per request |")
    print("|---|---|---|---|")
    budgets = []
    for label in labels:
        for setup in setups:
            pair = pairs[(label, setup.label)]
            ours = per_request_ms(pair.ours)
            print(f"| `{label}` | {setup.label} | {listed(per_request_ms(pair.bare))} | {listed(ours)} |")
            budgets.append(budget(label, setup.label, ours, TARGET * mean_rate(pair.bare), os.cpu_count()))
    print("\n" + "\n".join(budgets))
