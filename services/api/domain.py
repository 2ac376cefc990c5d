"""The API's pure rules: task identity, input schemas, thresholds, budgets. No I/O.

Decisions that must hold under concurrency (duplicate names, one active job, the first
key) are made by the log's consumers; the rules here are the API's early, friendly
answers and the shapes of what it appends.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from services.api.validation import FieldError
from shared.events.base import derive_id
from shared.events.tasks import input_field_names
from shared.git_policy import Origin, refusal, target_url

ACTIVE_STATUSES = ("PENDING", "RUNNING", "EVALUATING", "COMPILING")
#: The most items one ``POST /api/v1/feedback/batch`` takes.
BATCH_LIMIT = 1000
#: What a stored feedback row and the request item that wrote it have in common.
FEEDBACK_FIELDS = ("task_id", "inputs", "output", "score", "source", "metadata")
TERMINAL_STATUSES = ("SUCCESS", "FAILED", "PR_FAILED")
SEED_LIMIT = 5000
#: Settings an ``auto_pr`` task cannot work without (``git_token`` is stored encrypted).
AUTO_PR_REQUIRES = ("git_provider", "git_repo", "git_token", "prompt_path")
#: Settings naming where the Git token goes: changing one forgets the token (unless a new one comes).
GIT_TARGET = ("git_provider", "git_base_url", "git_repo")


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


def git_target_problems(settings: Mapping[str, Any], allowed: tuple[Origin, ...]) -> list[FieldError]:
    """Why the task's Git token could not go where its settings point (DESIGN §4.8)."""
    base_url = settings.get("git_base_url")
    target = target_url(settings.get("git_provider"), base_url)
    if target is None:
        return []
    reason = refusal(target, allowed)
    if reason is None:
        return []
    if not base_url:
        provider = settings.get("git_provider")
        reason = f"is unset, so {provider}'s default {target} would be used, but {reason}"
    return [FieldError(field="git_base_url", message=reason)]


def token_clearing(changes: Mapping[str, Any], token_sent: bool, token_set: bool) -> dict[str, Any]:
    """The change that forgets the stored Git token when its target moves without a new token.

    A token was given for one repository on one host; keeping it when either changes is what
    let any key send it to a host of its choosing.
    """
    if token_sent or not token_set or not any(name in changes for name in GIT_TARGET):
        return {}
    return {"git_token_encrypted": None}


#: What an ``auto_pr`` task is told when a change of Git target forgot its token.
TOKEN_RESEND = FieldError(
    field="git_token",
    message="must be sent again in this request: changing git_provider, git_base_url or git_repo "
    "forgets the stored token, and mode auto_pr needs one",
)


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


def request_event_id(key_id: str, route: str, idempotency_key: str, *parts: object) -> uuid.UUID:
    """The id of an event appended by a request carrying an ``Idempotency-Key``.

    Every retry of the request derives the same ids, so a retry after a 503 or 504 whose
    write did land appends events the projector already has (first write wins) and the
    API can answer from the rows the first attempt wrote. The scope is the API key and
    the route, so two applications (or two routes) never share ids by choosing one key.
    The key is hashed first: ``derive_id`` joins its parts with ``/``, which a key may contain.
    """
    token = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return derive_id("idempotency", key_id, route, token, *parts)


def fingerprint(values: Mapping[str, Any]) -> str:
    """A digest of a feedback item's stored fields, equal for a request item and the row it wrote."""
    document = {name: values[name] for name in FEEDBACK_FIELDS}
    document["task_id"] = str(document["task_id"])
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()
