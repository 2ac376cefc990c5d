"""The chaos loop: SIGKILL a random service of ``kaizen up`` at random intervals.

The victim's pid is read from the supervisor's children at the moment of the kill, so the
supervisor's restarts are what brings each service back. After a kill of the API the loop
measures, before the next kill, how long until the API answers again: ``GET /livez``
(the process serves) and an authenticated ``GET`` (a user's read works again).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass

import httpx

from tests.support.supervised import Supervised, alive

SERVICES = ("api", "projector", "optimizer", "pr-publisher", "webhooks")
#: How long a recovery is watched for before it counts as "never within the watch".
RECOVERY_WATCH_SECONDS = 60.0


@dataclass
class Kill:
    service: str
    pid: int
    at: float  # monotonic
    wall: str  # the kill's local time, to find it in the services' logs
    livez_seconds: float | None = None  # API kills only: until GET /livez answered 200
    serving_seconds: float | None = None  # API kills only: until an authenticated GET answered 200
    back_seconds: float | None = None  # until the supervisor ran a new process of the service


class Monkey(threading.Thread):
    """Kills for ``seconds``, one kill every ``gap`` (min, max) seconds, chosen by ``rng``."""

    def __init__(self, up: Supervised, seconds: float, gap: tuple[float, float], rng: random.Random):
        super().__init__(name="chaos-monkey", daemon=True)
        self.up, self.seconds, self.gap, self.rng = up, seconds, gap, rng
        self.kills: list[Kill] = []
        self.error: BaseException | None = None
        self._bag: list[str] = []

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, never lost in a thread
            self.error = exc

    def _run(self) -> None:
        end = time.monotonic() + self.seconds
        with httpx.Client(base_url=self.up.api_url, headers={"X-API-Key": self.up.key}, timeout=2.0) as api:
            while time.monotonic() + self.gap[0] < end:
                time.sleep(self.rng.uniform(*self.gap))
                kill = self._kill_one()
                if kill is None:
                    continue
                self.kills.append(kill)
                if kill.service == "api":
                    _watch_api(api, kill)
                _watch_back(self.up, kill)

    def _kill_one(self) -> Kill | None:
        if not self._bag:  # each service once per round, in a random order: all of them get killed
            self._bag = self.rng.sample(SERVICES, len(SERVICES))
        victim = self._bag.pop()
        pid = self.up.services().get(victim)
        if pid is None:  # not running (yet): the supervisor is still restarting it
            self._bag.append(victim)
            return None
        os.kill(pid, signal.SIGKILL)
        return Kill(victim, pid, time.monotonic(), time.strftime("%H:%M:%S"))


def _watch_api(api: httpx.Client, kill: Kill) -> None:
    deadline = kill.at + RECOVERY_WATCH_SECONDS
    while time.monotonic() < deadline and kill.serving_seconds is None:
        now = time.monotonic()
        if kill.livez_seconds is None and _ok(api, "/livez"):
            kill.livez_seconds = now - kill.at
        if kill.livez_seconds is not None and _ok(api, "/api/v1/tasks?limit=1"):
            kill.serving_seconds = time.monotonic() - kill.at
            return
        time.sleep(0.05)


def _watch_back(up: Supervised, kill: Kill) -> None:
    deadline = kill.at + RECOVERY_WATCH_SECONDS
    while time.monotonic() < deadline:
        pid = up.services().get(kill.service)
        if pid is not None and pid != kill.pid and alive(pid):
            kill.back_seconds = time.monotonic() - kill.at
            return
        time.sleep(0.05)


def _ok(api: httpx.Client, path: str) -> bool:
    try:
        return api.get(path).status_code == 200
    except httpx.TransportError:
        return False
