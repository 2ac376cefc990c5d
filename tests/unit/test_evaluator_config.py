"""A task's evaluator_config is checked once, with a message per key."""

from __future__ import annotations

import pytest

from shared.evaluator_config import EvaluatorConfig, validate_evaluator_config


def test_the_defaults_are_valid_and_pick_the_metric_automatically() -> None:
    assert validate_evaluator_config({}) == []
    assert EvaluatorConfig().metric == "auto"


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        ({"metric": "os.system"}, "metric", "never code or a path"),
        ({"metric": "regex"}, "evaluator_config", "needs metric_options.pattern"),
        ({"metric": "regex", "metric_options": {"pattern": "("}}, "evaluator_config", "not a valid regular"),
        ({"metric": "label_match", "metric_options": {"labels": []}}, "evaluator_config", "list of 1"),
        ({"max_trials": 0}, "max_trials", "greater than or equal to 1"),
        ({"min_score_for_gold": 2}, "min_score_for_gold", "less than or equal to 1"),
        ({"auto": "extreme"}, "auto", "light"),
        ({"metrik": "exact_match"}, "metrik", "is not a setting"),
    ],
)
def test_each_bad_setting_is_named_with_a_reason(config: dict[str, object], key: str, words: str) -> None:
    problems = validate_evaluator_config(config)
    assert problems, config
    where, message = problems[0]
    assert where == key and words in message


def test_a_server_registered_metric_is_accepted_by_name() -> None:
    assert validate_evaluator_config({"metric": "my_team_metric"}) == []
    assert (
        validate_evaluator_config({"metric": "label_match", "metric_options": {"labels": ["a", "b"]}}) == []
    )
