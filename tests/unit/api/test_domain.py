"""The API's pure rules: task identity, schemas, auto_pr, thresholds, budgets."""

from __future__ import annotations

from services.api import domain
from shared.events.base import derive_id


def test_name_key_ignores_case_and_surrounding_spaces() -> None:
    assert domain.name_key("  Summarize-Ticket ") == domain.name_key("summarize-ticket")
    assert domain.name_key("Straße") == domain.name_key("STRASSE")


def test_task_id_is_derived_from_name_key_and_generation() -> None:
    key = domain.name_key("Summarize")
    assert (
        domain.task_id_for(key, 0) == domain.task_id_for("summarize", 0) == derive_id("task", "summarize", 0)
    )
    assert domain.task_id_for(key, 1) != domain.task_id_for(key, 0)


def test_auto_pr_names_every_missing_setting() -> None:
    missing = domain.missing_for_auto_pr({"mode": "auto_pr", "git_provider": "github", "git_repo": ""}, False)
    assert [e.field for e in missing] == ["git_repo", "git_token", "prompt_path"]
    assert all(e.message == "is required when mode is auto_pr" for e in missing)


def test_auto_pr_complete_and_optimize_only_need_nothing() -> None:
    full = {"mode": "auto_pr", "git_provider": "gitlab", "git_repo": "g/r", "prompt_path": "p.txt"}
    assert domain.missing_for_auto_pr(full, token_set=True) == []
    assert domain.missing_for_auto_pr({"mode": "optimize_only"}, token_set=False) == []


def test_inputs_must_match_a_list_schema_exactly() -> None:
    errors = domain.input_mismatch(["ticket", "lang"], {"ticket": "x", "extra": 1})
    assert [str(e) for e in errors] == [
        "inputs.lang: is required by the task's schema",
        "inputs.extra: is not in the task's schema",
    ]
    assert domain.input_mismatch(["ticket"], {"ticket": "x"}) == []


def test_object_and_json_schema_forms_name_their_fields() -> None:
    assert domain.input_mismatch({"ticket": "string"}, {"ticket": "x"}) == []
    json_schema = {"type": "object", "properties": {"ticket": {"type": "string"}}}
    assert [e.field for e in domain.input_mismatch(json_schema, {})] == ["inputs.ticket"]


def test_no_schema_accepts_any_inputs() -> None:
    assert domain.input_mismatch(None, {"anything": 1}) == []


def test_schema_must_name_unique_non_empty_fields() -> None:
    assert domain.schema_problems(["a", "b"]) == []
    assert domain.schema_problems(None) == []
    assert [e.message for e in domain.schema_problems([])] == ["must name at least one input field"]
    assert [e.message for e in domain.schema_problems(["a", "a"])] == ["field names must be unique"]
    assert [e.message for e in domain.schema_problems([" "])] == ["field names must not be empty"]


def test_threshold_progress_is_a_ratio_with_raw_counts() -> None:
    assert domain.threshold_progress(13, 50) == {
        "progress": 0.26,
        "feedback_since_last_job": 13,
        "threshold": 50,
    }
    assert domain.threshold_progress(60, 50)["progress"] == 1.2


def test_budget_warning_only_when_the_estimate_exceeds_the_budget() -> None:
    assert domain.budget_warning(0.5, None) is None
    assert domain.budget_warning(0.5, 0.5) is None
    warning = domain.budget_warning(0.53, 0.25)
    assert warning is not None and "$0.5300" in warning and "$0.2500" in warning
