"""The chaos run in one table: kills per service, recovery times, writes and jobs."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from tests.chaos.clients import OptimizeRequest, Write, attempt_counts
from tests.chaos.evidence import LoggedFeedback
from tests.chaos.monkey import SERVICES, Kill


def _seconds(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    text = f"p50 {statistics.median(known):.2f} / max {max(known):.2f}"
    missing = len(values) - len(known)
    return text + (f" ({missing} never)" if missing else "")


def summary_table(
    seed: int,
    kills: list[Kill],
    writes: list[Write],
    requests: list[OptimizeRequest],
    jobs: list[dict[str, Any]],
    logged: LoggedFeedback,
    settle: dict[str, float],
) -> str:
    rows: list[tuple[str, str]] = [("seed (KAIZEN_CHAOS_SEED)", str(seed))]
    for service in SERVICES:
        mine = [k for k in kills if k.service == service]
        rows.append(
            (
                f"kills: {service}",
                f"{len(mine)}   new process after {_seconds([k.back_seconds for k in mine])} s",
            )
        )
    api = [k for k in kills if k.service == "api"]
    rows.append(("API recovery: GET /livez 200", f"{_seconds([k.livez_seconds for k in api])} s"))
    rows.append(("API recovery: authenticated GET 200", f"{_seconds([k.serving_seconds for k in api])} s"))
    acknowledged = sum(w.acknowledged for w in writes)
    retried = sum(1 for w in writes if w.acknowledged and len(w.attempts) > 1)
    rows.append(("feedback writes", str(len(writes))))
    rows.append(("  acknowledged (201)", f"{acknowledged} ({retried} after a retry with the same key)"))
    rows.append(("  never acknowledged", str(len(writes) - acknowledged)))
    rows.append(
        (
            "  attempts by outcome",
            ", ".join(f"{k}: {n}" for k, n in sorted(attempt_counts(writes).items(), key=str)),
        )
    )
    again = sum(n - 1 for n in logged.appends.values() if n > 1)
    rows.append(
        ("FeedbackRecorded in the log", f"{sum(logged.appends.values())} ({again} re-appends of an id)")
    )
    rows.append(
        (
            "optimize requests",
            ", ".join(
                f"{k}: {n}"
                for k, n in sorted(Counter(r.attempts[-1] for r in requests if r.attempts).items(), key=str)
            )
            or "-",
        )
    )
    statuses = Counter(str(j["status"]) for j in jobs)
    rows.append(("jobs", f"{len(jobs)}: " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))))
    reasons = Counter(str(j.get("error_message"))[:80] for j in jobs if j["status"] != "SUCCESS")
    rows += [(f"  {n} job(s) not SUCCESS", reason) for reason, n in reasons.items()]
    rows += [(name, f"{value:.1f}") for name, value in settle.items()]
    width = max(len(name) for name, _ in rows)
    lines = ["", "chaos summary", "-" * (width + 40)]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)
