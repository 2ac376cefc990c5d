"""A PR is opened only for a task in auto_pr mode, and only when the export beats the baseline
on validation and does not lose to it on the held-out test split."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.optimizer.events_out import improves, publishes
from services.optimizer.spec import JobResult

GIT = {
    "mode": "auto_pr",
    "git_provider": "github",
    "git_repo": "o/r",
    "git_token_encrypted": "x",
    "prompt_path": "p",
}


def result(baseline: float | None, export: float | None, **test: Any) -> JobResult:
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
        **test,
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


def test_an_export_that_loses_on_the_test_split_is_not_published() -> None:
    held_out = {"test_size": 20, "test_baseline_score": 0.7, "test_export_score": 0.65}
    assert not improves(result(0.5, 0.8, **held_out))
    assert improves(result(0.5, 0.8, **{**held_out, "test_export_score": 0.7}))


def test_a_test_split_that_was_not_measured_proves_nothing() -> None:
    assert not improves(result(0.5, 0.8, test_size=20, test_baseline_score=0.7, test_export_score=None))


scores = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(scores, scores, scores, scores)
def test_the_gate_never_publishes_a_prompt_below_the_baseline_on_validation_or_test(
    val_base: float, val_export: float, test_base: float, test_export: float
) -> None:
    held_out = {"test_size": 12, "test_baseline_score": test_base, "test_export_score": test_export}
    if improves(result(val_base, val_export, **held_out)):
        assert val_export > val_base and test_export >= test_base
