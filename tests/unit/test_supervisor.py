"""``kaizen up``'s supervisor restarts dead children by deadline, never one after the other.

Children are tiny real processes (``python -c "import time; time.sleep(60)"``); the watch
loop runs in a thread, as it runs in ``kaizen up``'s main thread.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kaizen_cli.supervisor import Child, Supervisor, child_env

pytestmark = pytest.mark.timeout(60)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor(child_env({}), delays=(0.5,))
    yield sup
    sup.stop_all(grace=5)


def watching(sup: Supervisor) -> threading.Thread:
    thread = threading.Thread(target=sup.watch, daemon=True)
    thread.start()
    return thread


def kill(child: Child) -> int:
    assert child.process is not None
    pid = child.process.pid
    os.kill(pid, signal.SIGKILL)
    return pid


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def running_again(child: Child, old_pid: int) -> bool:
    return child.pid != old_pid and child.process is not None and child.process.poll() is None


def test_two_children_that_die_together_are_both_restarted(supervisor: Supervisor, tmp_path: Path) -> None:
    a = supervisor.add_command("a", SLEEPER, tmp_path / "a.log")
    b = supervisor.add_command("b", SLEEPER, tmp_path / "b.log")
    watcher = watching(supervisor)

    old = (kill(a), kill(b))

    assert wait_for(lambda: running_again(a, old[0]) and running_again(b, old[1]), timeout=15)
    assert a.restarts == b.restarts == 1
    supervisor.stopping = True
    watcher.join(5)


def test_a_child_waiting_out_a_long_backoff_does_not_delay_another_ones_restart(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    supervisor.delays = (0.5, 30)
    slow = supervisor.add_command("slow", SLEEPER, tmp_path / "slow.log")
    quick = supervisor.add_command("quick", SLEEPER, tmp_path / "quick.log")
    slow.restarts = 1  # it died before: its next restart waits 30 s
    watcher = watching(supervisor)

    slow_pid, quick_pid = kill(slow), kill(quick)

    # The old supervisor slept 30 s for `slow` before it even looked at `quick`.
    assert wait_for(lambda: running_again(quick, quick_pid), timeout=15)
    assert slow.pid == slow_pid and slow.restart_at is not None  # scheduled, not slept through
    supervisor.stopping = True
    watcher.join(5)
    assert not watcher.is_alive()


def test_a_child_that_ran_a_while_before_dying_starts_a_fresh_series_of_delays(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    supervisor.delays = (0.5, 30)
    child = supervisor.add_command("c", SLEEPER, tmp_path / "c.log")
    child.restarts, child.started_at = 4, time.monotonic() - 120  # stable for two minutes
    pid = kill(child)

    assert wait_for(lambda: child.exit_reason() is not None, timeout=5)
    supervisor.tick(time.monotonic())

    assert child.restart_at is not None and child.restart_at - time.monotonic() < 1
    assert child.pid == pid
