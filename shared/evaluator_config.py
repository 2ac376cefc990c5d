"""A task's ``evaluator_config``: how its jobs score answers and how big a run is (pure).

The API validates a task's config with :func:`validate_evaluator_config` (a 422 names
the key) and the optimizer reads the same model, so a job never fails late on a setting
the API accepted. Server-registered metrics are named like built-in ones; only built-in
metrics' options are checked here.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

BUILTIN_METRICS = ("auto", "label_match", "llm_judge", "exact_match", "contains", "regex")
MAX_LABELS = 50
MAX_LABEL_CHARS = 100
MAX_PATTERN_CHARS = 500


class EvaluatorConfig(BaseModel):
    """The keys a task's ``evaluator_config`` may hold; anything else is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(
        "auto",
        description="auto (label_match when the outputs form a label set, else llm_judge), label_match, "
        "llm_judge, exact_match, contains, regex, or a metric the server registered",
    )
    metric_options: dict[str, Any] = Field(default_factory=dict)
    auto: Literal["light", "medium", "heavy"] | None = None
    max_trials: int | None = Field(None, ge=1, le=500)
    max_bootstrapped_demos: int | None = Field(None, ge=0, le=16)
    max_labeled_demos: int | None = Field(None, ge=0, le=16)
    min_score_for_gold: float | None = Field(None, ge=0.0, le=1.0)
    num_threads: int | None = Field(None, ge=1, le=16)
    max_tokens: int | None = Field(None, ge=16, le=16384)
    task_model: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("metric")
    @classmethod
    def _metric_is_a_name(cls, name: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
            raise ValueError(
                "must be a metric name (lowercase letters, digits, underscores), never code or a path"
            )
        return name

    @model_validator(mode="after")
    def _options_fit_the_metric(self) -> EvaluatorConfig:
        options = self.metric_options
        if self.metric == "label_match" and "labels" in options:
            labels = options["labels"]
            if (
                not isinstance(labels, list)
                or not 1 <= len(labels) <= MAX_LABELS
                or not all(isinstance(x, str) and 0 < len(x.strip()) <= MAX_LABEL_CHARS for x in labels)
            ):
                raise ValueError(
                    f"metric_options.labels must be a list of 1–{MAX_LABELS} non-empty labels "
                    f"of at most {MAX_LABEL_CHARS} characters"
                )
        if self.metric == "regex":
            pattern = options.get("pattern")
            if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN_CHARS:
                raise ValueError(
                    f"the regex metric needs metric_options.pattern (1–{MAX_PATTERN_CHARS} characters)"
                )
            try:
                regex.compile(pattern)
            except regex.error as exc:
                raise ValueError(f"metric_options.pattern is not a valid regular expression: {exc}") from exc
        return self


def validate_evaluator_config(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, message)`` for every problem in ``config``; empty when it is valid."""
    try:
        EvaluatorConfig.model_validate(config)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "evaluator_config"
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = f"is not a setting; known: {', '.join(EvaluatorConfig.model_fields)}"
            problems.append((where, message))
        return problems
    return []
