"""The metric registry: built-in metrics, safe regexes, server-registered metrics."""

from __future__ import annotations

import time

import pytest

from services.optimizer import metrics
from services.optimizer.metrics import MetricError, build_metric, normalize, register_metric

NO_INPUTS: dict[str, str] = {}


@pytest.mark.parametrize(
    ("expected", "predicted", "score"),
    [
        ("positive", "positive", 1.0),
        ("positive", "  Positive.\n", 1.0),
        ("positive", '"POSITIVE"', 1.0),
        ("New York", "new   york!", 1.0),
        ("positive", "negative", 0.0),
        ("positive", "The answer is positive", 0.0),
        ("positive", "", 0.0),
    ],
)
def test_exact_match_compares_normalized_text(expected: str, predicted: str, score: float) -> None:
    assert build_metric("exact_match")(NO_INPUTS, expected, predicted) == score


def test_contains_finds_the_reference_inside_a_longer_answer() -> None:
    contains = build_metric("contains")
    assert contains(NO_INPUTS, "positive", "I think the review is Positive.") == 1.0
    assert contains(NO_INPUTS, "positive", "negative") == 0.0
    assert contains(NO_INPUTS, "", "anything") == 0.0


def test_regex_extracts_the_answer_then_compares_it_with_the_reference() -> None:
    metric = build_metric("regex", {"pattern": r"\b(positive|negative)\b"})
    assert metric(NO_INPUTS, "negative", "Sentiment: NEGATIVE, clearly") == 1.0
    assert metric(NO_INPUTS, "negative", "positive, not negative") == 0.0  # the first label counts
    assert metric(NO_INPUTS, "negative", "no label here") == 0.0


def test_regex_without_a_group_compares_the_whole_match() -> None:
    metric = build_metric("regex", {"pattern": r"\d+"})
    assert metric(NO_INPUTS, "42", "the answer is 42") == 1.0


@pytest.mark.parametrize("options", [{}, {"pattern": ""}, {"pattern": "(unclosed"}, {"pattern": "a" * 501}])
def test_a_bad_regex_is_rejected_before_the_run(options: dict[str, str]) -> None:
    with pytest.raises(MetricError):
        build_metric("regex", options)


def test_a_pathological_regex_times_out_and_scores_zero() -> None:
    metric = build_metric("regex", {"pattern": r"^(a+)+$"})
    started = time.monotonic()
    assert metric(NO_INPUTS, "a", "a" * 40 + "!") == 0.0
    assert time.monotonic() - started < 10


def test_an_unknown_metric_names_the_available_ones() -> None:
    with pytest.raises(MetricError, match="exact_match"):
        build_metric("from my_module import evil")


def test_the_judge_metric_needs_a_judge_model() -> None:
    with pytest.raises(MetricError):
        build_metric("llm_judge")


def test_a_server_registered_metric_is_selectable_and_clamped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_REGISTRY", dict(metrics._REGISTRY))
    register_metric(
        "length_ratio", lambda inputs, expected, predicted: 5 * len(predicted) / max(1, len(expected))
    )
    metric = build_metric("length_ratio")
    assert metric(NO_INPUTS, "abcd", "ab") == 1.0  # 2.5 clamped
    assert metric(NO_INPUTS, "abcd", "") == 0.0


@pytest.mark.parametrize("name", ["exact_match", "llm_judge", "Bad-Name", "a.b.c", ""])
def test_built_ins_cannot_be_replaced_and_names_are_plain(name: str) -> None:
    with pytest.raises(MetricError):
        register_metric(name, lambda inputs, expected, predicted: 1.0)


@pytest.mark.parametrize(
    ("value", "score"),
    [
        (0.8, 0.8),
        ("0.25", 0.25),
        ("7/10", 0.7),
        ("score: 85", 0.85),
        (1, 1.0),
        ("none", None),
        (-1, None),
        (True, None),
    ],
)
def test_judge_scores_are_read_on_their_scale(value: object, score: float | None) -> None:
    assert metrics._as_score(value) == score


def test_normalize_folds_case_space_and_quotes() -> None:
    assert normalize("  «Ünïcode»  TEXT. ") == normalize("«ünïcode» text")
