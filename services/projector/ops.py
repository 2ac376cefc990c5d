"""The projector's fold of operational events: each service instance's last heartbeat.

Only the latest state is kept (one row per instance, one per instance's loop), which is
what the health views read; the log keeps the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.events import ops

if TYPE_CHECKING:
    from services.projector.handlers import Fact
    from services.projector.view import View


def on_heartbeat(view: View, f: Fact, e: ops.ServiceHeartbeat) -> None:
    view.heartbeats.put(
        {
            "instance": e.instance,
            "service": e.service,
            "pid": e.pid,
            "time": f.time,
            "active_jobs": e.active_jobs,
        }
    )
    for loop in e.loops:
        view.service_loops.put(
            {
                "instance": e.instance,
                "loop": loop.name,
                "time": f.time,
                "alive": loop.alive,
                "seconds_since_progress": loop.seconds_since_progress,
                "busy_seconds": loop.busy_seconds,
                "failures": loop.failures,
            }
        )
