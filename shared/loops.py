"""Supervised background loops: one error policy for every service's background tasks.

A loop is a coroutine ``body(health)`` meant to run until the process's ``stop`` is set.
:class:`Loops` starts it as a task and watches it:

- an exception is logged with its traceback, and the body is started again after a
  capped exponential backoff (0.5 s, doubling, at most 30 s);
- a body that fails ``max_failures`` times in a row without progress, or that returns
  while ``stop`` is not set, is fatal: ``on_fatal`` runs (by default it sets ``stop``) and
  :meth:`Loops.raise_if_failed` then raises, so the process exits non-zero and its
  supervisor (``kaizen up``, systemd, Kubernetes) restarts it. A process that limps on
  without the loop that starts jobs or opens PRs is worse than one that restarts.

Each loop records its liveness and progress on a monotonic clock: the body wraps each
unit of work in :meth:`LoopHealth.iteration`. A loop is *stuck* when an iteration has run
longer than a bound, or when it keeps failing with no progress for longer than that
bound. A loop that waits for work (an idle consumer) is not stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from shared.events.ops import LoopReport

log = logging.getLogger(__name__)

BACKOFF_START_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
#: About two minutes of retries with the default backoff before the process gives up.
MAX_FAILURES = 8

P = ParamSpec("P")
T = TypeVar("T")
Clock = Callable[[], float]


class LoopFailed(RuntimeError):
    """A background loop ended, or kept failing: the process must exit and be restarted."""


def backoff(failures: int, start: float = BACKOFF_START_SECONDS, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """The delay before the next attempt after ``failures`` failures in a row."""
    return float(min(cap, start * 2 ** max(failures - 1, 0)))


def is_stuck(report: LoopReport, bound: float, age: float = 0.0) -> bool:
    """Whether a loop, as reported ``age`` seconds ago, has made no progress for over ``bound`` s."""
    busy = report.busy_seconds
    return (
        not report.alive
        or (busy is not None and busy + age > bound)
        or (report.failures > 0 and report.seconds_since_progress + age > bound)
    )


@dataclass
class LoopHealth:
    """One loop's liveness and last progress (monotonic seconds)."""

    name: str
    clock: Clock = time.monotonic
    last_progress: float = field(init=False)
    busy_since: float | None = None
    failures: int = 0
    alive: bool = True

    def __post_init__(self) -> None:
        self.last_progress = self.clock()

    def progress(self) -> None:
        self.last_progress = self.clock()
        self.failures = 0

    @contextlib.contextmanager
    def iteration(self) -> Iterator[None]:
        """One unit of work: busy while inside, progress when it finishes without raising."""
        self.busy_since = self.clock()
        try:
            yield
        finally:
            self.busy_since = None
        self.progress()

    def around(self, work: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """``work`` with each call counted as an iteration (a consumer's batch handler)."""

        async def tracked(*args: P.args, **kwargs: P.kwargs) -> T:
            with self.iteration():
                return await work(*args, **kwargs)

        return tracked

    def report(self) -> LoopReport:
        now = self.clock()
        return LoopReport(
            name=self.name,
            alive=self.alive,
            seconds_since_progress=round(max(now - self.last_progress, 0.0), 3),
            busy_seconds=None if self.busy_since is None else round(max(now - self.busy_since, 0.0), 3),
            failures=self.failures,
        )

    def stuck(self, bound: float) -> bool:
        return is_stuck(self.report(), bound)


Body = Callable[[LoopHealth], Awaitable[None]]


class Loops:
    """The background loops of one process, each retried, watched and reported."""

    def __init__(
        self,
        stop: asyncio.Event,
        *,
        on_fatal: Callable[[], None] | None = None,
        max_failures: int = MAX_FAILURES,
        backoff_start: float = BACKOFF_START_SECONDS,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.stop = stop
        self.health: dict[str, LoopHealth] = {}
        self.failure: LoopFailed | None = None
        self._on_fatal = on_fatal or stop.set
        self._max_failures = max_failures
        self._backoff = (backoff_start, backoff_cap)
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []

    def track(self, name: str) -> LoopHealth:
        """A loop driven elsewhere (the consumer's own loop) that still reports its progress."""
        health = self.health[name] = LoopHealth(name, self._clock)
        return health

    def spawn(self, name: str, body: Body) -> asyncio.Task[None]:
        """Run ``body`` under supervision until ``stop`` is set or :meth:`close`."""
        task = asyncio.create_task(self._supervise(self.track(name), body), name=f"loop-{name}")
        self._tasks.append(task)
        return task

    async def _supervise(self, health: LoopHealth, body: Body) -> None:
        while not self.stop.is_set():
            try:
                await body(health)
            except Exception as exc:
                health.failures += 1
                log.error("loop %s failed (%d in a row)", health.name, health.failures, exc_info=exc)
                if health.failures >= self._max_failures:
                    self._give_up(health, f"loop {health.name} failed {health.failures} times in a row")
                    return
                await self._pause(backoff(health.failures, *self._backoff))
                continue
            if not self.stop.is_set():
                self._give_up(health, f"loop {health.name} ended while the process still runs")
            return

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    def _give_up(self, health: LoopHealth, why: str) -> None:
        health.alive = False
        log.critical("%s; stopping the process so that it is restarted", why)
        if self.failure is None:
            self.failure = LoopFailed(why)
        self._on_fatal()

    def reports(self) -> list[LoopReport]:
        return [h.report() for h in self.health.values()]

    def stuck(self, bound: float) -> list[str]:
        """Names of the loops that are dead or have made no progress for over ``bound`` s."""
        return [h.name for h in self.health.values() if h.stuck(bound)]

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def close(self) -> None:
        """Cancel every loop and wait for them (a shutdown, not a failure)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
