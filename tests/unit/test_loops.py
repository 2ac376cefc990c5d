"""Supervised background loops: retried after errors, fatal when they end, stuck when they hang."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from shared.events.envelope import Envelope
from shared.events.ops import LoopReport, ServiceHeartbeat
from shared.kafka.consumer import act_when_caught_up
from shared.loops import LoopFailed, LoopHealth, Loops, backoff, is_stuck
from shared.service import heartbeat_loop

pytestmark = pytest.mark.timeout(20)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def quick_loops(stop: asyncio.Event, **kwargs: Any) -> Loops:
    return Loops(stop, backoff_start=0.01, backoff_cap=0.02, **kwargs)


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_loop_that_raises_is_logged_with_its_traceback_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    loops = quick_loops(stop)
    calls: list[int] = []

    async def flaky(health: LoopHealth) -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise KafkaConnectionError("blip")
        with health.iteration():
            pass
        await stop.wait()

    with caplog.at_level(logging.ERROR, logger="shared.loops"):
        loops.spawn("flaky", flaky)
        await until(lambda: len(calls) == 3)
    stop.set()
    await loops.close()

    failures = [r for r in caplog.records if "loop flaky failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info is not None for r in failures)
    assert loops.failure is None and loops.health["flaky"].failures == 0
    loops.raise_if_failed()


async def test_a_loop_that_ends_while_the_process_runs_stops_the_process_with_an_error() -> None:
    stop = asyncio.Event()
    loops = quick_loops(stop)

    async def quits(health: LoopHealth) -> None:
        return None

    loops.spawn("quits", quits)
    await until(stop.is_set)
    await loops.close()

    assert loops.health["quits"].alive is False
    with pytest.raises(LoopFailed, match="quits ended"):
        loops.raise_if_failed()


async def test_a_loop_that_keeps_failing_gives_up_after_the_limit_and_calls_on_fatal() -> None:
    stop = asyncio.Event()
    fatal: list[bool] = []
    loops = quick_loops(stop, max_failures=3, on_fatal=lambda: fatal.append(True))
    attempts: list[int] = []

    async def broken(health: LoopHealth) -> None:
        attempts.append(1)
        raise ValueError("unexpected parse error")

    task = loops.spawn("broken", broken)
    await asyncio.wait_for(task, 5)

    assert len(attempts) == 3 and fatal == [True] and not stop.is_set()
    assert loops.stuck(bound=60) == ["broken"]
    with pytest.raises(LoopFailed, match="failed 3 times"):
        loops.raise_if_failed()


async def test_a_loop_that_ends_because_stop_was_set_is_a_clean_shutdown() -> None:
    stop = asyncio.Event()
    loops = quick_loops(stop)

    async def polite(health: LoopHealth) -> None:
        await stop.wait()

    task = loops.spawn("polite", polite)
    stop.set()
    await asyncio.wait_for(task, 5)

    assert loops.failure is None and loops.health["polite"].alive


def test_backoff_doubles_from_half_a_second_up_to_thirty() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4, 7, 8, 20)] == [0.5, 1, 2, 4, 30, 30, 30]


def test_an_iteration_running_longer_than_the_bound_is_stuck_and_an_idle_loop_is_not() -> None:
    clock = FakeClock()
    health = LoopHealth("reconcile", clock)
    clock.now += 500  # idle for long: waiting for work is not being stuck
    assert not health.stuck(bound=120)

    with health.iteration():
        clock.now += 119
        assert not health.stuck(bound=120)
        clock.now += 2
        assert health.stuck(bound=120)
        assert health.report().busy_seconds == pytest.approx(121)

    assert not health.stuck(bound=120) and health.report().seconds_since_progress == 0


def test_a_failing_iteration_records_no_progress() -> None:
    clock = FakeClock()
    health = LoopHealth("reconcile", clock)
    clock.now += 10
    with pytest.raises(RuntimeError), health.iteration():
        raise RuntimeError("boom")
    assert health.report().seconds_since_progress == 10 and health.busy_since is None


def test_a_loop_failing_without_progress_past_the_bound_is_stuck() -> None:
    report = LoopReport(name="reconcile", alive=True, seconds_since_progress=100, failures=3)

    assert not is_stuck(report, bound=120)
    assert is_stuck(report, bound=120, age=21)  # as judged 21 s after its heartbeat
    assert is_stuck(report.model_copy(update={"alive": False, "failures": 0}), bound=120)


@dataclass
class FakeAiokafka:
    """What ``caught_up`` asks of an aiokafka consumer; the first ``errors`` calls fail."""

    errors: int
    assigned: set[TopicPartition] = field(default_factory=lambda: {TopicPartition("t", 0)})

    def assignment(self) -> set[TopicPartition]:
        if self.errors:
            self.errors -= 1
            raise KafkaConnectionError("broker gone for a moment")
        return self.assigned

    def highwater(self, tp: TopicPartition) -> int:
        return 5

    async def position(self, tp: TopicPartition) -> int:
        return 5


@dataclass
class FakeConsumer:
    consumer: FakeAiokafka


async def test_the_reconciler_keeps_acting_after_a_kafka_blip() -> None:
    stop = asyncio.Event()
    loops = quick_loops(stop)
    acted: list[set[int]] = []

    async def act(partitions: set[int]) -> None:
        acted.append(partitions)

    consumer: Any = FakeConsumer(FakeAiokafka(errors=2))
    loops.spawn("reconcile", lambda health: act_when_caught_up(consumer, stop, act, 0.01, health))
    await until(lambda: len(acted) >= 2)
    stop.set()
    await loops.close()

    assert acted[0] == {0} and loops.failure is None


@dataclass
class RecordingLog:
    appended: list[Envelope] = field(default_factory=list)

    async def append(self, envelope: Envelope) -> None:
        self.appended.append(envelope)


async def test_heartbeats_carry_every_loop_and_keep_their_instance_name_across_restarts() -> None:
    stop = asyncio.Event()
    events: Any = RecordingLog()
    loops = quick_loops(stop)
    loops.track("consume")
    runs: list[int] = []

    async def beats_then_fails_once(health: LoopHealth) -> None:
        runs.append(1)
        task = asyncio.create_task(
            heartbeat_loop(
                events, "optimizer", stop, 0.01, health=health, loops=loops.reports, instance="opt@host:1"
            )
        )
        await asyncio.sleep(0.05)
        if len(runs) == 1:
            task.cancel()
            raise RuntimeError("simulated crash")
        await task

    loops.spawn("heartbeat", beats_then_fails_once)
    await until(lambda: len(runs) == 2 and len(events.appended) > 6)
    stop.set()
    await loops.close()

    beats = [e.data for e in events.appended]
    assert all(isinstance(b, ServiceHeartbeat) and b.instance == "opt@host:1" for b in beats)
    last = beats[-1]
    assert isinstance(last, ServiceHeartbeat)
    assert {loop.name for loop in last.loops} == {"consume", "heartbeat"}
