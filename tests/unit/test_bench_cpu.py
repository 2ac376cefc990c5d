"""The benchmarks' CPU accounting (``bench.cpu``): ``/proc``, costs per unit, the cores a target needs.

These figures decide what a benchmark says bounds a throughput, so the arithmetic is pinned
down here with numbers worked by hand.
"""

from __future__ import annotations

import math
import os
import time

import pytest

from bench.ab import budget, per_request_ms
from bench.client_throughput import needed
from bench.cpu import cores_at, cost_line, metered, per_unit_ms, pooled, spent
from bench.profiling import stat_cpu_seconds
from bench.wrk import Run

# Fields 14 and 15 (utime 250, stime 50 ticks); the name holds a space and a ")".
STAT = "4711 (uvicorn) worker) S 1 4711 4711 0 -1 4194560 9000 0 0 0 250 50 7 3 20 0 4 0 100 0 0"


def test_stat_cpu_seconds_counts_fields_from_the_last_parenthesis() -> None:
    assert stat_cpu_seconds(STAT, 100) == pytest.approx(3.0)


def test_metered_counts_the_cpu_a_process_spent_in_the_block_only() -> None:
    burnt = time.process_time()
    with metered({"me": os.getpid()}) as used:
        assert used == {}  # filled when the block ends
        while time.process_time() - burnt < 0.3:
            pass
    # /proc counts in clock ticks (10 ms at 100 Hz), process_time more finely.
    assert used["me"] == pytest.approx(time.process_time() - burnt, abs=0.05)


def test_per_unit_ms_scales_to_the_unit_asked_and_is_nan_without_units() -> None:
    cpu = {"api": 2.0, "projector": 0.5}
    assert per_unit_ms(cpu, 1000) == {"api": 2.0, "projector": 0.5}
    assert per_unit_ms(cpu, 5000, per=1000) == {"api": 400.0, "projector": 100.0}
    assert math.isnan(per_unit_ms(cpu, 0)["api"])


def test_spent_and_pooled_weigh_runs_by_what_they_served() -> None:
    assert spent({"api": 10.0}, {"api": 12.5}) == {"api": 2.5}
    total, units = pooled([({"api": 1.0, "wrk": 0.1}, 1000), ({"api": 3.0, "wrk": 0.1}, 1000)])
    assert total == pytest.approx({"api": 4.0, "wrk": 0.2}) and units == 2000
    # A mean of per-run figures would say 1.5 ms for the runs below; the pool says 1.1 ms.
    runs = [Run(9000, 10.0, 1, 2, 0, 0, 1.0, {"api": 9.0}), Run(1000, 10.0, 1, 2, 0, 0, 1.0, {"api": 2.0})]
    assert per_request_ms(runs) == pytest.approx({"api": 1.1})


def test_cores_at_a_rate_sum_every_process_but_the_one_left_out() -> None:
    ms = {"api": 1.0, "broker": 0.5, "wrk": 0.25}
    assert cores_at(ms, 1000) == pytest.approx(1.75)
    assert cores_at(ms, 1000, leave_out="wrk") == pytest.approx(1.5)
    assert cores_at({"api": 50.0}, 20_000, per=1000) == pytest.approx(1.0)


def test_cost_line_lists_processes_in_order_with_their_total_and_busy_cores() -> None:
    cpu = {"api": 1.12, "projector": 0.31, "broker": 0.52, "wrk": 0.08}
    assert cost_line(cpu, 1000, 1.0) == (
        "cpu per request: api 1.12 ms, projector 0.31 ms, broker 0.52 ms, wrk 0.08 ms; "
        "total 2.03 ms (2.03 cores busy)"
    )
    assert cost_line({"client": 0.6}, 6000, 2.0, unit="item", per=1000) == (
        "cpu per 1,000 items: client 100.00 ms; total 100.00 ms (0.30 cores busy)"
    )


def test_budget_at_half_of_bare_counts_kaizen_s_processes_and_wrk_apart() -> None:
    line = budget("POST /api/v1/feedback", "sqlite, 7 jobs", {"api": 1.5, "broker": 0.5, "wrk": 0.2}, 1350, 2)
    assert line == (
        "`POST /api/v1/feedback`, sqlite, 7 jobs: at 0.5x of bare (1,350 req/s) Kaizen's processes "
        "would need 2.70 cores (2.00 ms CPU per request x 1,350 req/s; 2.97 with wrk's); "
        "the machine has 2 cores"
    )


def test_needed_for_batch_ingestion_says_the_cores_with_and_without_the_client() -> None:
    ms = {"api": 40.0, "projector": 20.0, "broker": 15.0, "client": 25.0}
    assert needed(ms, 2) == (
        "at 20,000 items/s these costs need 2.00 cores, 1.50 without the client; the machine has 2 cores"
    )
    assert "the broker, not started here, not counted" in needed(ms, 2, counted=False)
