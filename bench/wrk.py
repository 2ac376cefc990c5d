"""Load from wrk: the Lua script that sends one route, and the figures it reports back.

wrk is written in C, so it does not saturate a core before the server under test does, which
a Python client would (``notes/measuring.md``). ``bench.api_ratio`` runs it against the API
and a bare FastAPI app in turn; anything else that loads a server with wrk can use the same.
Each run also carries the CPU time wrk and the servers named to it spent (``bench.cpu``),
since they all share the machine's cores.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.cpu import metered

# wrk calls done() once at the end; one JSON line is easier to parse than its report.
DONE_HOOK = """
done = function(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'WRK {"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p99_ms": %.3f, "non2xx": %d, "errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status, failed))
end
"""


@dataclass(frozen=True)
class Route:
    """One request, as wrk sends it to both servers; with ``paths``, each request takes the next."""

    label: str
    slug: str  # names the profile's file
    method: str
    path: str
    body: str | None = None
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    load: float
    # CPU seconds by process during the run: the servers' the caller named, then wrk's own.
    cpu: Mapping[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def __str__(self) -> str:
        failed = self.non2xx or self.errors
        failures = f", {self.non2xx} non-2xx, {self.errors} socket errors" if failed else ""
        return (
            f"{self.rate:7.0f} req/s, p50 {self.p50_ms:7.2f} ms, p99 {self.p99_ms:7.2f} ms"
            f" (load {self.load:.2f}){failures}"
        )


def lua_string(text: str) -> str:
    """``text`` as a Lua string literal: JSON's escapes are Lua's, once non-ASCII stays as UTF-8."""
    return json.dumps(text, ensure_ascii=False)


def wrk_script(route: Route, key: str | None, directory: Path) -> Path:
    """A Lua script that sends ``route`` (with the key, for the API) and reports through ``done``."""
    lines = [f"wrk.method = {lua_string(route.method)}"]
    if route.body is not None:
        lines += [f"wrk.body = {lua_string(route.body)}", 'wrk.headers["Content-Type"] = "application/json"']
    if key is not None:
        lines.append(f'wrk.headers["X-API-Key"] = {lua_string(key)}')
    if route.paths:
        lines.append("local paths = {" + ", ".join(lua_string(p) for p in route.paths) + "}")
        lines += [
            "local n = 0",
            "request = function()",
            "  n = n + 1",
            "  return wrk.format(nil, paths[n % #paths + 1])",
            "end",
        ]
    path = directory / f"{uuid.uuid4().hex}.lua"
    path.write_text("\n".join(lines) + DONE_HOOK)
    return path


def parse_wrk(output: str, load: float) -> Run:
    """The figures ``DONE_HOOK`` printed, from wrk's whole standard output."""
    line = next((line for line in output.splitlines() if line.startswith("WRK ")), None)
    if line is None:
        raise ValueError(f"wrk printed no WRK line:\n{output[-2000:]}")
    return Run(**json.loads(line[4:]), load=load)


def wrk(
    url: str, script: Path, seconds: int, connections: int, servers: Mapping[str, int] | None = None
) -> Run:
    """One run of wrk; its ``cpu`` holds the CPU seconds each of ``servers`` (name: pid) spent
    during the run, then wrk's own (``bench.cpu``).

    wrk's own is the change in this process's reaped children's CPU time across the run,
    which is wrk's alone as long as no other child of this process ends meanwhile (the
    servers of the benchmarks live until the end).
    """
    load = os.getloadavg()[0]
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with metered(servers or {}) as used:
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return replace(parse_wrk(output, load), cpu=used | {"wrk": own})
