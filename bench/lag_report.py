"""What ``bench.lag`` prints of its runs: each window's lags, and the tables comparing runs."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import LoadSampler, percentiles, summary
from bench.lag_timing import Sent, Watermarks

WARM_UP_SECONDS = 2.0


@dataclass
class Run:
    """One measured window: which projector, its lags, the load it ran under."""

    label: str
    from_ack_ms: tuple[float, float]  # p50, p99
    from_start_ms: tuple[float, float]
    cpu_seconds: float
    seconds: float
    load: str
    loadavg: tuple[float, float]  # 1-minute load average before and after


def report(
    sent: list[Sent],
    marks: Watermarks,
    load: LoadSampler,
    rate: int,
    seconds: float,
    prefill: int,
    poll_ms: float,
    label: str = "working tree",
    cpu: float = 0.0,
    loadavg: tuple[float, float] = (0.0, 0.0),
) -> Run:
    window = [s for s in sent if s.started - sent[0].started >= WARM_UP_SECONDS]
    from_start, from_ack, acks = [], [], []
    for s in window:
        visible = marks.visible_at(s.position.partition, s.position.offset)
        assert visible is not None, "every event was seen applied before the report"
        from_start.append(visible - s.started)
        from_ack.append(max(0.0, visible - s.acked))
        acks.append(s.acked - s.started)
    print(
        f"\n{label}: {rate} events/s for {seconds:.0f} s after a log of {prefill} events "
        f"(first {WARM_UP_SECONDS:.0f} s not counted; offsets polled every {poll_ms:g} ms):"
    )
    print(f"  append → visible   {summary(from_start)}")
    print(f"  ack → visible      {summary(from_ack)}")
    print(f"  append → ack       {summary(acks)}")
    print(f"  projector CPU from the window's start until all was visible: {cpu:.1f} s")
    print(f"  {load.summary()}; 1-minute load {loadavg[0]:.1f} before, {loadavg[1]:.1f} after", flush=True)
    return Run(label, percentiles(from_ack), percentiles(from_start), cpu, seconds, load.summary(), loadavg)


def growth_table(runs: list[Run], prefills: list[int]) -> list[str]:
    """Markdown: every run, then the largest log's mean p50 and p99 over the smallest's."""
    lines = ["| run | log before | ack → visible p50 / p99 | append → visible p50 / p99 | CPU s | load |"]
    lines.append("|---|---|---|---|---|---|")
    for n, r in enumerate(runs, 1):
        lines.append(
            f"| {n} | {r.label} | {r.from_ack_ms[0]:.1f} / {r.from_ack_ms[1]:.1f} ms "
            f"| {r.from_start_ms[0]:.1f} / {r.from_start_ms[1]:.1f} ms | {r.cpu_seconds:.1f} "
            f"| {r.loadavg[0]:.1f} → {r.loadavg[1]:.1f} |"
        )
    small, large = (f"{min(prefills):,} events", f"{max(prefills):,} events")

    def mean(label: str, pick: Callable[[Run], float]) -> float:
        return statistics.mean(pick(r) for r in runs if r.label == label)

    lines.append("")
    lines.append(f"{large} over {small} (above 1: slower on the large log):")
    for name, pick in [
        ("ack → visible p50", lambda r: r.from_ack_ms[0]),
        ("ack → visible p99", lambda r: r.from_ack_ms[1]),
        ("append → visible p50", lambda r: r.from_start_ms[0]),
        ("append → visible p99", lambda r: r.from_start_ms[1]),
        ("projector CPU s", lambda r: r.cpu_seconds),
    ]:
        lines.append(f"  {name:22} {mean(large, pick) / mean(small, pick):.3f}")
    return lines
