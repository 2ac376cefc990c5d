"""Where a benchmarked process spends its time: py-spy's samples of it, and its CPU time.

py-spy is not a dependency (``pip install py-spy``, only for measuring). ``bench.api_ratio``
samples the API for a fixed time and summarises the stacks; ``bench.lag`` and
``bench.replay`` record the projector while a block runs and leave the raw stacks for a
flame-graph viewer.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.common import tool

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


def py_spy(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample the process for ``seconds`` into ``out`` (threads kept apart, idle samples left out).

    Blocking (py-spy pauses the process for each sample), so every stack is whole rather
    than torn by the running process; the cost is the pauses, which is why the profiled
    runs of ``bench.api_ratio`` are not part of its ratios.
    """
    command = [tool("py-spy"), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250"]
    command += ["--threads", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def sampled(pid: int, out: str | None) -> Iterator[None]:
    """``py-spy record`` of ``pid`` while the block runs (nothing when ``out`` is None)."""
    if out is None:
        yield
        return
    spy = subprocess.Popen(
        [PY_SPY, "record", "--pid", str(pid), "--threads", "--format", "raw", "--rate", "200", "-o", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
        spy.wait(30)
        print(f"projector stacks: {out}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))


def stat_cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """utime + stime (fields 14 and 15 of ``/proc/<pid>/stat``, in clock ticks) in seconds.

    The command name (field 2) is in parentheses and may itself hold spaces or ``)``, so the
    fields are counted from the last ``)``.
    """
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def frame_package(frame: str) -> str:
    """``fn (fastapi/routing.py:12)`` → ``fastapi``; our own code by service: ``services/api``."""
    path = frame.rpartition("(")[2].partition(":")[0]
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0] in ("services", "shared") else parts[0]


def hot_spots(collapsed: Path, top: int = 10) -> list[str]:
    """Where the samples went, in percent of all: per thread, self time per package and per
    function, and our own functions with their callees (how much each route step costs)."""
    threads: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        total += samples
        # "thread (123): Thread-7 (_connection_worker_thread)": one line per kind of thread.
        threads[re.sub(r"\d+", "N", frames[0].partition(": ")[2])] += samples
        leaf = frames[-1] if len(frames) > 1 else "(no Python frame)"
        packages[frame_package(leaf)] += samples
        leaves[leaf] += samples
        for frame in set(frames[1:]):
            if frame_package(frame).startswith(("services/", "shared/")) and "__main__" not in frame:
                ours[frame] += samples
    if not total:
        return ["no samples"]

    def share(counter: Counter[str], n: int) -> str:
        return ", ".join(f"{name} {100 * k / total:.1f}%" for name, k in counter.most_common(n))

    shown = [f"{total} samples; threads: {share(threads, 3)}", f"self time by package: {share(packages, 8)}"]
    shown += [f"self {100 * n / total:5.1f}%  {frame}" for frame, n in leaves.most_common(top)]
    return shown + [f"incl {100 * n / total:5.1f}%  {frame}" for frame, n in ours.most_common(top)]
