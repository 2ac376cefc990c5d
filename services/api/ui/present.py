"""What the dashboard shows, computed from API answers: pure functions, no I/O.

A job's stage timeline and trial scores from its events, the scores side by side from
its metadata, a diff of two prompt texts, and a problem+json document in plain words.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.api.schemas.jobs import JobEvent, JobResponse

TRIAL = "kaizen.job.trial_completed.v1"
#: Stage names of the events a job goes through (anything else is named from its type).
STAGES = {
    "kaizen.job.optimization_requested.v1": "Optimization requested",
    "kaizen.job.requested.v1": "Queued (PENDING)",
    "kaizen.job.started.v1": "Started (RUNNING)",
    "kaizen.job.evaluating.v1": "Scoring the baseline (EVALUATING)",
    "kaizen.job.compiling.v1": "Optimizing (COMPILING)",
    "kaizen.job.exporting.v1": "Re-scoring the candidates as the application calls the model",
    "kaizen.job.compiled.v1": "Compiled, new prompt version",
    "kaizen.job.cancel_requested.v1": "Cancel requested",
    "kaizen.pr.retry_requested.v1": "PR retry requested",
    "kaizen.pr.created.v1": "Pull request opened",
    "kaizen.pr.failed.v1": "Pull request failed",
    "kaizen.job.succeeded.v1": "Succeeded",
    "kaizen.job.failed.v1": "Failed",
}


@dataclass(frozen=True)
class Stage:
    name: str
    time: datetime
    seconds: float | None  # until the next stage; None for the last one
    note: str


@dataclass(frozen=True)
class Trial:
    number: int
    score: float
    best: float


@dataclass(frozen=True)
class Score:
    label: str
    value: float | None
    help: str


def stage_name(event_type: str) -> str:
    if event_type in STAGES:
        return STAGES[event_type]
    middle = event_type.removeprefix("kaizen.").rsplit(".", 1)[0]
    return middle.replace(".", " ").replace("_", " ").capitalize()


def _note(event: JobEvent, trials: int) -> str:
    data = event.data
    match event.type:
        case "kaizen.job.started.v1":
            return f"attempt {data.get('attempt', 1)} on {data.get('worker', '?')}"
        case "kaizen.job.evaluating.v1":
            sizes = f"train {data.get('train_size')}, validation {data.get('val_size')}"
            return f"{sizes}, held-out test {data.get('test_size', 0)}"
        case "kaizen.job.compiling.v1":
            return f"baseline {percent(data.get('baseline_score'))}; {trials} trial(s)"
        case "kaizen.job.exporting.v1":
            return f"{data.get('candidates', '?')} candidates"
        case "kaizen.pr.created.v1":
            return str(data.get("pr_url") or "")
        case "kaizen.pr.failed.v1" | "kaizen.job.failed.v1":
            return str(data.get("error_message") or data.get("reason") or data.get("detail") or "")
    return ""


def timeline(events: Sequence[JobEvent]) -> list[Stage]:
    """One stage per event but trials (counted in the compiling stage), each with its duration."""
    trials = sum(1 for e in events if e.type == TRIAL)
    kept = [e for e in events if e.type != TRIAL]
    stages = []
    for index, event in enumerate(kept):
        following = kept[index + 1] if index + 1 < len(kept) else None
        seconds = (following.time - event.time).total_seconds() if following is not None else None
        stages.append(Stage(stage_name(event.type), event.time, seconds, _note(event, trials)))
    return stages


def trials(events: Sequence[JobEvent]) -> list[Trial]:
    """Each trial's score and the best so far, in trial order (a resumed job counts from its last start)."""
    found: dict[int, Trial] = {}
    for event in events:
        if event.type == "kaizen.job.started.v1":
            found.clear()
        elif event.type == TRIAL:
            number = int(event.data["trial"])
            found[number] = Trial(number, float(event.data["score"]), float(event.data["best_score"]))
    return [found[n] for n in sorted(found)]


def scores(job: JobResponse, events: Sequence[JobEvent]) -> list[Score]:
    """Baseline, in-DSPy, export and held-out scores side by side (None: not measured)."""
    meta = job.job_metadata
    baseline = meta.get("baseline_score")
    if baseline is None:
        baseline = next(
            (e.data.get("baseline_score") for e in events if e.type.endswith("compiling.v1")), None
        )
    return [
        Score("Baseline", baseline, "the current prompt, on the validation split"),
        Score("In DSPy", meta.get("optimized_score"), "the optimizer's own best score"),
        Score("Export", meta.get("export_score"), "the exported prompt, called as the application calls it"),
        Score("Held-out test (baseline)", meta.get("test_baseline_score"), "current prompt, unseen rows"),
        Score("Held-out test (export)", meta.get("test_export_score"), "exported prompt, unseen rows"),
    ]


def usage(meta: Mapping[str, Any]) -> dict[str, str]:
    """Cost, calls and tokens as shown (``—`` when the job did not report them)."""
    tokens = meta.get("tokens") or {}
    cost = meta.get("cost_usd")
    return {
        "Cost": f"${cost:.4f}" if isinstance(cost, int | float) else "—",
        "LLM calls": str(meta.get("llm_calls", "—")),
        "Prompt tokens": str(tokens.get("prompt", "—")),
        "Completion tokens": str(tokens.get("completion", "—")),
        "Total tokens": str(tokens.get("total", "—")),
        "Trials": str(meta.get("trials_completed", "—")),
        "Duration": seconds_text(meta.get("duration_seconds")),
    }


def percent(value: object) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, int | float) else "—"


def seconds_text(value: object) -> str:
    if not isinstance(value, int | float):
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {int(value % 60)} s"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add" | "del" | "ctx" | "hunk"
    sign: str
    text: str


def diff(old: str, new: str) -> list[DiffLine]:
    """A unified diff of two prompt texts, line by line (whole texts as context: prompts are short)."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1000)
    shown = []
    for line in list(lines)[2:]:  # the two file-name headers
        if line.startswith("@@"):
            shown.append(DiffLine("hunk", "", line))
        elif line.startswith("+"):
            shown.append(DiffLine("add", "+", line[1:]))
        elif line.startswith("-"):
            shown.append(DiffLine("del", "−", line[1:]))
        else:
            shown.append(DiffLine("ctx", " ", line[1:]))
    return shown
