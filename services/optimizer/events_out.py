"""The job events a worker run emits, with ids derived from (job, attempt, step).

A re-run of the same step re-derives the same event id, so consumers dedupe it.

Appends are not atomic (``EventLog.append_all``): a Kafka failure may leave a prefix of
a step's events in the log, or all of them unacknowledged. Each step is therefore
re-appended whole — the very same envelopes, same ids — until Kafka acknowledges it or
:data:`APPEND_RETRY_SECONDS` pass. Every consumer dedupes by event id (the projector's
job history, the prompt version's id, the publisher's job), so the log then holds the
complete step and a partial first try changes nothing. Should the optimizer die in
between, the job is still unfinished in its state and is resumed as a new attempt
(DESIGN §4 rule 4), whose result events carry the same ids again. (In that rare case a
version event of the dead attempt that did reach the log is the one consumers keep,
beside the new attempt's ``JobCompiled`` figures.)

Results are fitted to the broker's record limit first (``event_budget``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from services.optimizer import event_budget
from services.optimizer.spec import (
    Baseline,
    JobFailure,
    JobResult,
    JobSpec,
    ModelUsage,
    Progress,
    Stage,
    Trial,
    Usage,
)
from shared import metrics
from shared.events import jobs as jb
from shared.events.base import Event, derive_id
from shared.events.envelope import Envelope
from shared.events.prompts import PromptVersionCreated
from shared.kafka.producer import EventLog, LogUnavailable
from shared.llm.pricing import three_way_sizes

log = logging.getLogger(__name__)
SOURCE = "optimizer"
#: How long a step's events are re-appended while Kafka is unavailable, and the backoff.
APPEND_RETRY_SECONDS = 120.0
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


def _count_usage(model: str, now: ModelUsage, before: ModelUsage | None) -> None:
    base = before or ModelUsage(llm_calls=0, prompt_tokens=0, completion_tokens=0, cost_usd=0.0)
    metrics.count_llm_usage(
        model,
        now.llm_calls - base.llm_calls,
        now.prompt_tokens - base.prompt_tokens,
        now.completion_tokens - base.completion_tokens,
        now.cost_usd - base.cost_usd,
    )


def _sum(parts: Iterable[ModelUsage]) -> ModelUsage:
    parts = list(parts)
    return ModelUsage(
        llm_calls=sum(p.llm_calls for p in parts),
        prompt_tokens=sum(p.prompt_tokens for p in parts),
        completion_tokens=sum(p.completion_tokens for p in parts),
        cost_usd=sum(p.cost_usd for p in parts),
    )


def _ids(row: Any) -> dict[str, uuid.UUID]:
    return {"job_id": uuid.UUID(row.job_id), "task_id": uuid.UUID(row.task_id)}


async def _emit(events: EventLog, row: Any, *steps: tuple[Event, tuple[object, ...]]) -> None:
    envelopes = [
        Envelope.wrap(
            event,
            source=SOURCE,
            id=derive_id("job-event", row.job_id, *key),
            correlation_id=row.correlation_id,
        )
        for event, key in steps
    ]
    deadline = time.monotonic() + APPEND_RETRY_SECONDS
    for attempt in range(1_000_000):
        try:
            await events.append_all(envelopes)
            _count_verdicts(step[0] for step in steps)
            return
        except LogUnavailable:
            if time.monotonic() >= deadline:
                raise
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            log.warning("job %s: appending %s failed; again in %.1f s", row.job_id, envelopes[0].type, delay)
            await asyncio.sleep(delay)


def _count_verdicts(events: Iterable[Event]) -> None:
    """Count a job's verdict once its events are in the log (a re-run after a crash counts again)."""
    for event in events:
        if isinstance(event, jb.JobSucceeded):
            metrics.JOBS.labels("succeeded", "").inc()
        elif isinstance(event, jb.JobFailed):
            cancelled = event.kind == "cancelled"
            metrics.JOBS.labels("cancelled" if cancelled else "failed", "" if cancelled else event.kind).inc()
        elif isinstance(event, jb.JobCompiled) and event.publish:
            metrics.JOBS.labels("compiled", "").inc()


async def started(events: EventLog, row: Any, spec: JobSpec, attempt: int, worker: str) -> None:
    event = jb.JobStarted(
        **_ids(row),
        attempt=attempt,
        worker=worker,
        teacher_model=spec.teacher_model,
        judge_model=spec.judge_model,
    )
    await _emit(events, row, (event, (attempt, "started")))


async def failed(events: EventLog, row: Any, message: str, kind: str, *, step: str = "failed") -> None:
    event = jb.JobFailed(**_ids(row), error_message=message, kind=kind, progress_step=step)
    await _emit(events, row, (event, ("failed",)))


class ProgressEmitter:
    """Turns the worker's progress lines into job events."""

    def __init__(self, events: EventLog, row: Any, spec: JobSpec, attempt: int) -> None:
        self.events, self.row, self.spec, self.attempt = events, row, spec, attempt
        self.baseline: float | None = None
        self.usage = Usage(llm_calls=0, prompt_tokens=0, completion_tokens=0, cost_usd=0.0)
        self.metered = self.usage  # the part of the usage already added to the Prometheus counters
        self.metered_by_model: dict[str, ModelUsage] = {}

    async def on_progress(self, progress: Progress) -> None:
        key: tuple[object, ...] = (self.attempt,)
        match progress:
            case Stage(step="evaluating"):
                await _emit(self.events, self.row, (self._evaluating(), (*key, "evaluating")))
            case Baseline(score=score):
                self.baseline = score
            case Stage(step="compiling"):
                compiling = jb.JobCompiling(**_ids(self.row), baseline_score=self.baseline or 0.0)
                await _emit(self.events, self.row, (compiling, (*key, "compiling")))
            case Stage(step="exporting"):
                exporting = jb.JobExporting(**_ids(self.row), candidates=progress.count or 0)
                await _emit(self.events, self.row, (exporting, (*key, "exporting")))
            case Trial() as trial:
                event = jb.JobTrialCompleted(
                    **_ids(self.row),
                    trial=trial.trial,
                    total_trials=trial.total,
                    score=trial.score,
                    best_score=trial.best,
                    llm_calls=self.usage.llm_calls,
                    cost_usd=self.usage.cost_usd,
                )
                await _emit(self.events, self.row, (event, (*key, "trial", trial.trial)))
                metrics.TRIALS.inc()
            case Usage() as usage:
                self.usage = usage
                self.meter(usage)

    def meter(self, totals: Usage | JobResult) -> None:
        """Add the job's usage since the last call to the LLM counters, by model (totals only grow).

        A usage line splits its totals by model. What a total holds beyond the split (a
        result after a lost usage line) is counted under the model ``unattributed``.
        """
        done = self.metered
        split = totals.by_model if isinstance(totals, Usage) else {}
        for model, now in split.items():
            before = self.metered_by_model.get(model)
            _count_usage(model, now, before)
            self.metered_by_model[model] = now
        attributed = _sum(self.metered_by_model.values())
        rest = (
            totals.llm_calls - max(done.llm_calls, attributed.llm_calls),
            totals.prompt_tokens - max(done.prompt_tokens, attributed.prompt_tokens),
            totals.completion_tokens - max(done.completion_tokens, attributed.completion_tokens),
            round(totals.cost_usd - max(done.cost_usd, attributed.cost_usd), 6),  # per-model roundings
        )
        metrics.count_llm_usage("unattributed", *rest)
        self.metered = Usage(
            llm_calls=max(done.llm_calls, totals.llm_calls),
            prompt_tokens=max(done.prompt_tokens, totals.prompt_tokens),
            completion_tokens=max(done.completion_tokens, totals.completion_tokens),
            cost_usd=max(done.cost_usd, totals.cost_usd),
        )

    def _evaluating(self) -> jb.JobEvaluating:
        train, val, test = three_way_sizes(len(self.spec.usable_examples()))
        return jb.JobEvaluating(
            **_ids(self.row),
            feedback_count=sum(1 for e in self.spec.examples if e.source != "seed"),
            seed_count=sum(1 for e in self.spec.examples if e.source == "seed"),
            train_size=train,
            val_size=val,
            test_size=test,
            dataset_hash=self.spec.dataset_hash(),
        )


def metadata(spec: JobSpec, result: JobResult) -> dict[str, Any]:
    """``job_metadata``: every figure measured by the run (DESIGN §5)."""
    return {
        "teacher_model": spec.teacher_model,
        "judge_model": spec.judge_model,
        "trials_completed": result.trials_completed,
        "duration_seconds": round(result.duration_seconds, 3),
        "train_size": result.train_size,
        "val_size": result.val_size,
        "cost_usd": round(result.cost_usd, 6),
        "llm_calls": result.llm_calls,
        "tokens": {
            "prompt": result.prompt_tokens,
            "completion": result.completion_tokens,
            "total": result.prompt_tokens + result.completion_tokens,
        },
        "baseline_score": result.baseline_score,
        "optimized_score": result.optimized_score,
        "export_score": result.export_score,
        "optimizer": result.optimizer,
        "dspy_version": result.dspy_version,
        "dataset_hash": result.dataset_hash,
        "seed": result.seed,
        "metric": spec.metric,
        "budget_exhausted": result.budget_exhausted,
        "excluded_examples": result.excluded_examples,
        "parse_failures": result.parse_failures,
        "judge_failures": result.judge_failures,
        "prompt_contract": result.prompt_contract,
        "effective_metric": result.metric,
        "labels": result.labels,
        "test_size": result.test_size,
        "test_baseline_score": result.test_baseline_score,
        "test_export_score": result.test_export_score,
        "test_majority_score": result.test_majority_score,
        "program_export_score": result.program_export_score,
        "in_dspy_export_gap": _gap(result.optimized_score, result.program_export_score),
        "no_prompt_score": result.no_prompt_score,
        "user_message_score": result.user_message_score,
        "chosen_candidate": result.chosen_candidate,
        "candidates": [c.model_dump() for c in result.candidates],
        "proposals_dropped": result.proposals_dropped,
        "notes": result.notes,
    }


def _gap(in_dspy: float | None, exported: float | None) -> float | None:
    """How much the optimizer's in-DSPy score overstates the same program's exported score."""
    if in_dspy is None or exported is None:
        return None
    return round(in_dspy - exported, 4)


def _version(row: Any, result: JobResult, spec: JobSpec) -> PromptVersionCreated:

    return PromptVersionCreated(
        prompt_version_id=derive_id("prompt-version", row.job_id),
        **_ids(row),
        prompt_text=result.prompt_text,
        demos=[dict(d) for d in result.demos],
        dspy_state=result.dspy_state,
        eval_score=result.export_score,
        baseline_score=result.baseline_score,
        optimized_score=result.optimized_score,
        optimizer=result.optimizer,
        dspy_version=result.dspy_version,
        test_score=result.test_export_score,
    )


def publishes(settings: dict[str, Any]) -> bool:
    """A PR is opened when the task is in ``auto_pr`` mode with Git configured."""
    needed = ("git_provider", "git_repo", "git_token_encrypted", "prompt_path")
    return settings.get("mode") == "auto_pr" and all(settings.get(k) for k in needed)


def improves(result: JobResult) -> bool:
    """The export beats the current prompt on validation and is not worse on the held-out test split.

    Both are scored as the application calls the model. Only then is a PR worth a
    reviewer's time; otherwise the version stays a draft.
    """
    if result.export_score is None:
        return False
    if result.baseline_score is not None and result.export_score <= result.baseline_score:
        return False
    if result.test_export_score is None or result.test_baseline_score is None:
        return result.test_size == 0  # a test split that was not measured proves nothing
    return result.test_export_score >= result.test_baseline_score


async def compiled(
    events: EventLog,
    row: Any,
    spec: JobSpec,
    result: JobResult,
    progress: ProgressEmitter,
    settings: dict[str, Any],
) -> None:
    progress.meter(result)  # calls after the worker's last usage line
    try:
        version, notes = event_budget.fit_version(_version(row, result, spec))
    except event_budget.ResultTooLarge as exc:
        meta = {**metadata(spec, result), "prompt_chars": len(result.prompt_text)}
        too_large = jb.JobFailed(**_ids(row), error_message=str(exc), kind="too_large", job_metadata=meta)
        await _emit(events, row, (event_budget.fit_metadata_event(too_large), ("failed",)))
        return
    publish = publishes(settings) and improves(result)
    step = "completed" if publish or not publishes(settings) else "completed_no_improvement"
    examples = [e.model_dump() for e in result.examples]
    meta = metadata(spec, result)
    meta["notes"] = [*meta["notes"], *notes]
    compiled_event = jb.JobCompiled(
        **_ids(row),
        prompt_version_id=version.prompt_version_id,
        job_metadata=meta,
        examples=examples,
        publish=publish,
    )
    steps: list[tuple[Event, tuple[object, ...]]] = [
        (version, ("version",)),
        (event_budget.fit_metadata_event(compiled_event), ("compiled",)),
    ]
    if not publish:
        steps.append((jb.JobSucceeded(**_ids(row), progress_step=step), ("succeeded",)))
    await _emit(events, row, *steps)


async def failed_with(events: EventLog, row: Any, failure: JobFailure, progress: ProgressEmitter) -> None:
    steps: list[tuple[Event, tuple[object, ...]]] = []
    meta: dict[str, Any] = {
        "llm_calls": progress.usage.llm_calls,
        "cost_usd": round(progress.usage.cost_usd, 6),
    }
    if failure.partial is not None:
        progress.meter(failure.partial)
        meta = metadata(progress.spec, failure.partial)
        if failure.partial.prompt_text:
            # The best prompt so far is kept as a draft (budget exhausted, time limit).
            try:
                draft, notes = event_budget.fit_version(_version(row, failure.partial, progress.spec))
                steps.append((draft, ("version",)))
            except event_budget.ResultTooLarge as exc:
                notes = [f"best prompt so far not kept: {exc}"]
            meta["notes"] = [*meta["notes"], *notes]
    step = "cancelled" if failure.kind == "cancelled" else "failed"
    event = jb.JobFailed(
        **_ids(row),
        error_message=failure.error_message,
        kind=failure.kind,
        progress_step=step,
        job_metadata=meta,
    )
    steps.append((event_budget.fit_metadata_event(event), ("failed",)))
    await _emit(events, row, *steps)
