"""A PR is opened only for a task in auto_pr mode, and only when the export beats the baseline."""

from __future__ import annotations

from typing import Any

import pytest

from services.optimizer.events_out import improves, publishes
from services.optimizer.spec import JobResult

GIT = {
    "mode": "auto_pr",
    "git_provider": "github",
    "git_repo": "o/r",
    "git_token_encrypted": "x",
    "prompt_path": "p",
}


def result(baseline: float | None, export: float | None) -> JobResult:
    figures: dict[str, Any] = {
        "prompt_text": "p",
        "baseline_score": baseline,
        "optimized_score": 0.9,
        "export_score": export,
        "train_size": 8,
        "val_size": 2,
        "trials_completed": 1,
        "llm_calls": 3,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "cost_usd": 0.0,
        "duration_seconds": 1.0,
        "dspy_version": "3.4.1",
        "dataset_hash": "h",
        "seed": 0,
    }
    return JobResult(**figures)


@pytest.mark.parametrize(
    ("baseline", "export", "expected"),
    [(0.5, 0.6, True), (0.5, 0.5, False), (0.5, 0.2, False), (None, 0.1, True), (0.5, None, False)],
)
def test_only_an_export_that_beats_the_baseline_improves(
    baseline: float | None, export: float | None, expected: bool
) -> None:
    assert improves(result(baseline, export)) is expected


def test_only_auto_pr_tasks_with_complete_git_settings_publish() -> None:
    assert publishes(GIT)
    assert not publishes({**GIT, "mode": "optimize_only"})
    assert not publishes({**GIT, "git_token_encrypted": None})
