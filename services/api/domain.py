"""The API's pure rules: task identity, input schemas, thresholds, budgets. No I/O.

Decisions that must hold under concurrency (duplicate names, one active job, the first
key) are made by the log's consumers; the rules here are the API's early, friendly
answers and the shapes of what it appends.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from services.api.validation import FieldError
from shared.events.base import derive_id
from shared.events.tasks import input_field_names

ACTIVE_STATUSES = ("PENDING", "RUNNING", "EVALUATING", "COMPILING")
TERMINAL_STATUSES = ("SUCCESS", "FAILED", "PR_FAILED")
SEED_LIMIT = 5000
#: Settings an ``auto_pr`` task cannot work without (``git_token`` is stored encrypted).
AUTO_PR_REQUIRES = ("git_provider", "git_repo", "git_token", "prompt_path")


def name_key(name: str) -> str:
    """Task names are unique ignoring case and surrounding spaces."""
    return name.casefold().strip()


def task_id_for(key: str, generation: int) -> uuid.UUID:
    """The id of a new task, derived so two racing creates collide on one id and partition.

    ``generation`` counts deleted tasks of the same name, so a name can be reused after
    its task is deleted.
    """
    return derive_id("task", key, generation)


def missing_for_auto_pr(settings: Mapping[str, Any], token_set: bool) -> list[FieldError]:
    """What an ``auto_pr`` task still lacks (empty when the mode is not ``auto_pr``)."""
    if settings.get("mode") != "auto_pr":
        return []
    present = {name: settings.get(name) not in (None, "") for name in AUTO_PR_REQUIRES}
    present["git_token"] = token_set
    return [
        FieldError(field=name, message="is required when mode is auto_pr")
        for name in AUTO_PR_REQUIRES
        if not present[name]
    ]


def input_mismatch(
    schema: list[str] | dict[str, Any] | None, inputs: Mapping[str, Any], where: str = "inputs"
) -> list[FieldError]:
    """How ``inputs`` differ from the task's schema (no schema: anything goes)."""
    names = input_field_names(schema)
    if names is None:
        return []
    missing = [n for n in names if n not in inputs]
    extra = [n for n in inputs if n not in names]
    return [FieldError(field=f"{where}.{n}", message="is required by the task's schema") for n in missing] + [
        FieldError(field=f"{where}.{n}", message="is not in the task's schema") for n in extra
    ]


def schema_problems(schema: list[str] | dict[str, Any] | None) -> list[FieldError]:
    """A schema must name at least one field, each a non-empty, unique string."""
    names = input_field_names(schema)
    if names is None:
        return []
    if not names:
        return [FieldError(field="schema_json", message="must name at least one input field")]
    if any(not n.strip() for n in names):
        return [FieldError(field="schema_json", message="field names must not be empty")]
    if len(set(names)) != len(names):
        return [FieldError(field="schema_json", message="field names must be unique")]
    return []


def threshold_progress(live_since_cutoff: int, threshold: int) -> dict[str, Any]:
    """Progress toward the next auto trigger (may pass 1.0 while a job is running)."""
    return {
        "progress": round(live_since_cutoff / threshold, 4) if threshold > 0 else 0.0,
        "feedback_since_last_job": live_since_cutoff,
        "threshold": threshold,
    }


def budget_warning(estimate_usd: float, budget_usd: float | None) -> str | None:
    if budget_usd is None or estimate_usd <= budget_usd:
        return None
    return (
        f"The estimated cost (${estimate_usd:.4f}) exceeds the task's cost_budget (${budget_usd:.4f}); "
        "the job stops at the budget and keeps the best prompt found so far."
    )
