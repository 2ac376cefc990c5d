"""Building a job's ``JobSpec`` from the task's settings and its examples (pure).

A job is refused here, before any LLM call, when its task names a model the server no
longer allows, when its budget cannot be enforced, or when its result could not be stored
as an event (``event_budget.input_problem``): ``build_spec`` raises ``JobFailed``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.optimizer.event_budget import input_problem
from services.optimizer.spec import Example, JobFailed, JobFailure, JobSpec, ModelEndpoint
from shared.events.tasks import input_field_names
from shared.model_policy import DEFAULT_ALLOWED_MODELS, ModelPrice, ModelRules, model_problems, parse_patterns

# Task options (``evaluator_config``) that tune a run; anything else there is ignored.
RUN_OPTIONS = (
    "auto",
    "max_trials",
    "max_bootstrapped_demos",
    "max_labeled_demos",
    "min_score_for_gold",
    "num_threads",
    "max_tokens",
    "task_model",
)


@dataclass(frozen=True)
class ModelDefaults:
    """Server-side model settings: defaults, and the endpoint of the default models."""

    teacher_model: str
    judge_model: str
    default_api_base: str
    time_limit_seconds: float
    allowed_models: tuple[str, ...] = parse_patterns(DEFAULT_ALLOWED_MODELS)
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)

    @property
    def rules(self) -> ModelRules:
        return ModelRules(
            self.allowed_models, self.teacher_model, self.judge_model, self.default_api_base, self.prices
        )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _refused(kind: str, message: str) -> JobFailed:
    return JobFailed(JobFailure(kind=kind, error_message=message))


def _endpoints(defaults: ModelDefaults) -> dict[str, ModelEndpoint]:
    """The default models' endpoint, and the operator's prices (which override any other)."""
    default_models = {defaults.teacher_model, defaults.judge_model}
    models = {m: ModelEndpoint(api_base=defaults.default_api_base, api_key="local") for m in default_models}
    for model, price in defaults.prices.items():
        base = models.get(model, ModelEndpoint())
        models[model] = base.model_copy(update=price.model_dump())
    return models


def build_spec(job: Any, settings: dict[str, Any], rows: list[Any], defaults: ModelDefaults) -> JobSpec:
    """The spec of ``job``: the task's configuration and its examples up to the job's cut-off.

    Raises ``JobFailed`` when the job must not start (see the module's docstring).
    """
    if problems := model_problems(settings, defaults.rules):
        reasons = "; ".join(f"{name} {reason}" for name, reason in problems.items())
        raise _refused("model_refused", f"the task's model settings are refused on this server: {reasons}")
    spec = _spec(job, settings, rows, defaults)
    if problem := input_problem(spec):
        raise _refused("too_large", f"the job's result could not be stored: {problem}")
    return spec


def _spec(job: Any, settings: dict[str, Any], rows: list[Any], defaults: ModelDefaults) -> JobSpec:
    fields = input_field_names(settings.get("input_schema")) or sorted({k for r in rows for k in r.inputs})
    config = dict(settings.get("evaluator_config") or {})
    teacher = settings.get("teacher_model") or defaults.teacher_model
    judge = settings.get("judge_model") or defaults.judge_model
    options = {k: config[k] for k in RUN_OPTIONS if k in config}
    return JobSpec(
        job_id=job.job_id,
        task_id=job.task_id,
        task_name=settings.get("name", "task"),
        task_description=settings.get("description") or "",
        input_fields=fields or ["input"],
        prompt_contract=settings.get("prompt_contract") or "system",
        optimizer=settings.get("optimizer") or "mipro",
        module_type=settings.get("module_type", "predict"),
        teacher_model=teacher,
        judge_model=judge,
        models=_endpoints(defaults),
        metric=config.get("metric") or "auto",
        metric_options=dict(config.get("metric_options") or {}),
        examples=[
            Example(
                inputs={k: _as_text(v) for k, v in r.inputs.items()},
                output=r.output,
                score=r.score,
                source=r.source,
            )
            for r in rows
        ],
        current_prompt=settings.get("_active_prompt"),
        cost_budget=settings.get("cost_budget"),
        seed=int(job.job_id.replace("-", "")[:8], 16),
        time_limit_seconds=defaults.time_limit_seconds,
        **options,
    )
