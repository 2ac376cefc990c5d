"""Pure rules of the fold: job statuses and how each job event moves them."""

from __future__ import annotations

PENDING = "PENDING"
RUNNING = "RUNNING"
EVALUATING = "EVALUATING"
COMPILING = "COMPILING"
SUCCESS = "SUCCESS"
FAILED = "FAILED"
PR_FAILED = "PR_FAILED"

ACTIVE = frozenset({PENDING, RUNNING, EVALUATING, COMPILING})
TERMINAL = frozenset({SUCCESS, FAILED, PR_FAILED})


def stage_applies(current: str) -> bool:
    """A stage event (started, evaluating, compiling, trial, compiled) only moves an active job.

    A late or redelivered stage event after the job ended must not revive it.
    """
    return current in ACTIVE


def pr_created_applies(current: str) -> bool:
    """A PR exists: ends a job waiting for it or a PR_FAILED retry (a reused PR re-confirms SUCCESS)."""
    return current in ACTIVE or current in (PR_FAILED, SUCCESS)


def pr_failed_applies(current: str) -> bool:
    """A PR failure never undoes a SUCCESS (a concurrent retry may already have opened it)."""
    return current in ACTIVE or current == PR_FAILED


def trial_step(trial: int, total: int | None) -> str:
    return f"compiling: trial {trial}/{total}" if total else f"compiling: trial {trial}"
