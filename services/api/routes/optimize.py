"""``POST /api/v1/optimize/{task_id}``: ask for a job now, with a cost estimate.

The API answers early from the read model (unknown task, an active job, no feedback),
but the optimizer's decision is final: it sees every request and auto trigger of the
task in log order, so two requests in the same instant still get at most one job.

``GET /api/v1/optimize/{task_id}/estimate`` is the same estimate without the job: it
reads the read model and writes nothing, so a client can show the cost before asking.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Connection

from services.api import domain, views
from services.api.adapters import NotYetVisible, Outcome
from services.api.deps import AdminKey, ReadKey, Reads, RequestId, SettingsDep, WriterDep
from services.api.problems import ProblemError, conflict, not_found
from services.api.queries import feedback, jobs
from services.api.schemas.common import problem_responses
from services.api.schemas.jobs import CostEstimateOut, OptimizeEstimate, OptimizeResponse
from shared.events.jobs import OptimizationRequested
from shared.llm.pricing import CostEstimate, OptimizerSettings, Price, estimate_job_cost
from shared.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/optimize", tags=["optimize"])

DEFAULT_MIN_GOLD_SCORE = 0.7
NO_FEEDBACK = "the task has no feedback or seeds yet; send feedback or upload seeds first"
UNDECIDED = (
    "the request is in the log but the optimizer has not decided on it yet; "
    "see GET /api/v1/jobs?task_id={task_id} before asking again"
)


@router.post("/{task_id}", responses=problem_responses(400, 401, 404, 409, 422, 503, 504))
async def optimize(
    _: AdminKey, task_id: uuid.UUID, reads: Reads, writer: WriterDep, settings: SettingsDep, rid: RequestId
) -> OptimizeResponse:
    """Start an optimization job for the task now (`triggered_by` = `api_on_demand`)."""
    (task, config, total, gold), active = await reads.run(functools.partial(_before_job, task_id))
    if active is not None:
        raise _job_active(active.id)
    if total == 0:
        raise ProblemError(400, NO_FEEDBACK, slug="no-usable-feedback")
    try:
        outcome = await writer.decide(rid, OptimizationRequested(task_id=task_id, job_id=uuid.uuid4()))
    except NotYetVisible as exc:
        raise ProblemError(504, UNDECIDED.format(task_id=task_id), slug="not-yet-decided") from exc
    if not outcome.accepted:
        raise _rejection(outcome, task_id)
    job_id = uuid.UUID(str(outcome.entity_id))
    log.info("optimization accepted: job %s", job_id, extra={"task_id": task_id, "job_id": job_id})
    job = await views.shared_job_view(reads, job_id)
    estimate, warning = await _priced(task.settings, config, gold, settings)
    return OptimizeResponse(job=job, cost_estimate=estimate, budget_warning=warning)


@router.get("/{task_id}/estimate", responses=problem_responses(400, 401, 404, 422))
async def estimate(_: ReadKey, task_id: uuid.UUID, reads: Reads, settings: SettingsDep) -> OptimizeEstimate:
    """What a job for the task would probably cost now, as `POST` would estimate it; starts nothing."""
    task, config, total, gold = await reads.run(functools.partial(_examples, task_id))
    if total == 0:
        raise ProblemError(400, NO_FEEDBACK, slug="no-usable-feedback")
    estimate, warning = await _priced(task.settings, config, gold, settings)
    return OptimizeEstimate(
        cost_estimate=estimate, budget_warning=warning, feedback_count=total, usable_examples=gold
    )


#: A task's row, its evaluator config, its examples and those good enough to teach.
_Examples = tuple[Any, dict[str, Any], int, int]


def _examples(task_id: uuid.UUID, conn: Connection) -> _Examples:
    """What both routes read first, in one ``Reads.run`` work; a 404 problem when there is no such task."""
    task = views.live_task_in(conn, task_id)
    config = dict(task.settings.get("evaluator_config") or {})
    total, gold = feedback.example_counts(conn, task_id, _min_gold(config))
    return task, config, total, gold


def _before_job(task_id: uuid.UUID, conn: Connection) -> tuple[_Examples, Any | None]:
    """:func:`_examples`, and the task's active job if it has one."""
    return _examples(task_id, conn), jobs.active_for_task(conn, task_id)


def _job_active(job_id: object) -> ProblemError:
    detail = f"job {job_id} of this task is still active; wait for it to finish or cancel it"
    return conflict(detail, active_job_id=str(job_id))


def _rejection(outcome: Outcome, task_id: uuid.UUID) -> ProblemError:
    if outcome.reason == "job_active":
        return _job_active(outcome.entity_id)
    if outcome.reason == "no_usable_feedback":
        return ProblemError(400, outcome.detail or NO_FEEDBACK, slug="no-usable-feedback")
    if outcome.reason == "task_missing":
        return not_found(f"task {task_id} not found")
    return conflict(outcome.detail or "the optimizer refused the request")


def _min_gold(config: Mapping[str, Any]) -> float:
    value = config.get("min_score_for_gold", DEFAULT_MIN_GOLD_SCORE)
    return float(value) if isinstance(value, int | float) else DEFAULT_MIN_GOLD_SCORE


async def _priced(
    task: Mapping[str, Any], config: Mapping[str, Any], gold: int, settings: Settings
) -> tuple[CostEstimateOut, str | None]:
    """The estimate both routes answer with, and the budget warning it may raise."""
    estimate = await asyncio.to_thread(_estimate, dict(task), config, gold, settings)
    warning = domain.budget_warning(estimate.estimated_cost_usd, task.get("cost_budget"))
    return CostEstimateOut.model_validate(dataclasses.asdict(estimate)), warning


def _estimate(
    task: Mapping[str, Any], config: Mapping[str, Any], gold: int, settings: Settings
) -> CostEstimate:
    """The pre-run estimate over the examples good enough to teach (reads a price file: run in a thread).

    Priced as the job's meter prices: the operator's prices first, and the default models
    at the endpoint the optimizer serves them from.
    """
    teacher = task.get("teacher_model") or settings.default_teacher_model
    judge = task.get("judge_model") or settings.default_judge_model
    rules = settings.model_rules
    bases = {model: rules.api_base(model) for model in (rules.default_teacher, rules.default_judge)}
    prices = {
        model: Price(p.input_usd_per_million, p.output_usd_per_million) for model, p in rules.prices.items()
    }
    known = {f.name for f in dataclasses.fields(OptimizerSettings)}
    try:
        optimizer = OptimizerSettings(**{k: v for k, v in config.items() if k in known})
        return estimate_job_cost(gold, teacher, judge, optimizer, bases, prices)
    except (KeyError, TypeError, ValueError):
        # A hand-written evaluator_config the estimate cannot read: estimate with the defaults.
        return estimate_job_cost(gold, teacher, judge, OptimizerSettings(), bases, prices)
