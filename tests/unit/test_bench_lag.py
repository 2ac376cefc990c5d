"""``bench.lag``'s growth summary: the largest log's lag over the smallest's, from the runs' own figures."""

from __future__ import annotations

from bench.lag import Run, growth_table


def run(label: str, ack: tuple[float, float], start: tuple[float, float], cpu: float) -> Run:
    return Run(label, ack, start, cpu, 60.0, "load", (1.0, 1.0))


def test_growth_table_divides_the_large_log_s_mean_figures_by_the_small_log_s() -> None:
    runs = [
        run("10,000 events", (4.0, 20.0), (10.0, 40.0), 6.0),
        run("1,000,000 events", (5.0, 30.0), (10.0, 40.0), 6.0),
        run("10,000 events", (6.0, 20.0), (10.0, 40.0), 6.0),
    ]
    lines = growth_table(runs, [10_000, 1_000_000])
    ratios = {line[:24].strip(): float(line[24:]) for line in lines if line.startswith("  ")}
    assert ratios["ack → visible p50"] == 1.0  # 5 over the mean of 4 and 6
    assert ratios["ack → visible p99"] == 1.5
    assert ratios["append → visible p99"] == 1.0
    assert "1,000,000 events over 10,000 events (above 1: slower on the large log):" in lines
    assert sum(line.startswith("| ") and "events |" in line for line in lines) == 3
