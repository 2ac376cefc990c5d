"""A job is refused before any LLM call when its models or its result cannot be allowed (issue 11, 6-7).

``build_spec`` is the optimizer's last word: the allowlist, the prices or the task may have
changed since the API accepted the task.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from services.optimizer.spec import JobFailed
from services.optimizer.specs import ModelDefaults, build_spec
from shared.model_policy import ModelPrice
from shared.prompt_contract import MAX_PROMPT_CHARS

DEFAULTS = ModelDefaults("openai/smollm2", "openai/smollm2", "http://127.0.0.1:8765/v1", 600)
JOB = SimpleNamespace(job_id=str(uuid.uuid4()), task_id=str(uuid.uuid4()))


def rows(n: int, size: int = 20) -> list[Any]:
    return [
        SimpleNamespace(
            inputs={"ticket": f"ticket {i} " + "x" * size}, output=f"team {i}", score=0.9, source="feedback"
        )
        for i in range(n)
    ]


def settings(**values: Any) -> dict[str, Any]:
    return {"name": "t", "input_schema": ["ticket"], "evaluator_config": {}, **values}


def refusal(task: dict[str, Any], defaults: ModelDefaults = DEFAULTS, examples: Any = None) -> JobFailed:
    with pytest.raises(JobFailed) as caught:
        build_spec(JOB, task, rows(20) if examples is None else examples, defaults)
    return caught.value


def test_a_task_within_the_rules_gets_its_spec() -> None:
    spec = build_spec(JOB, settings(teacher_model="openai/gpt-4o-mini", cost_budget=1.0), rows(20), DEFAULTS)
    assert spec.teacher_model == "openai/gpt-4o-mini" and spec.cost_budget == 1.0


@pytest.mark.parametrize(
    "task",
    [
        settings(teacher_model="huggingface/https://evil.example/x"),
        settings(judge_model="mistral/mistral-large"),
        settings(evaluator_config={"task_model": "openai/http://evil"}),
    ],
    ids=["url", "outside-the-allowlist", "task-model"],
)
def test_a_job_whose_task_names_a_refused_model_fails_before_it_starts(task: dict[str, Any]) -> None:
    failure = refusal(task).failure
    assert failure.kind == "model_refused"
    assert "refused on this server" in failure.error_message


def test_a_model_removed_from_the_allowlist_since_the_task_was_saved_is_refused() -> None:
    narrowed = ModelDefaults(
        DEFAULTS.teacher_model,
        DEFAULTS.judge_model,
        DEFAULTS.default_api_base,
        600,
        allowed_models=("anthropic/*",),
    )
    assert build_spec(JOB, settings(teacher_model="openai/gpt-4o"), rows(20), DEFAULTS)
    assert "openai/gpt-4o" in refusal(settings(teacher_model="openai/gpt-4o"), narrowed).failure.error_message


def test_a_budget_over_an_unpriced_model_fails_and_an_operator_price_reaches_the_worker() -> None:
    task = settings(teacher_model="openai/finetune-xyz", cost_budget=0.5)
    assert "cost_budget" in refusal(task).failure.error_message
    price = ModelPrice(input_usd_per_million=2.0, output_usd_per_million=6.0)
    priced = ModelDefaults(
        DEFAULTS.teacher_model,
        DEFAULTS.judge_model,
        DEFAULTS.default_api_base,
        600,
        prices={"openai/finetune-xyz": price},
    )
    endpoint = build_spec(JOB, task, rows(20), priced).endpoint("openai/finetune-xyz")
    assert (endpoint.input_usd_per_million, endpoint.output_usd_per_million) == (2.0, 6.0)
    assert endpoint.api_base is None  # the provider's own endpoint: a price does not move the model


def test_an_operator_price_for_a_default_model_keeps_its_endpoint() -> None:
    price = ModelPrice(input_usd_per_million=0.1, output_usd_per_million=0.2)
    priced = ModelDefaults(
        DEFAULTS.teacher_model,
        DEFAULTS.judge_model,
        DEFAULTS.default_api_base,
        600,
        prices={"openai/smollm2": price},
    )
    endpoint = build_spec(JOB, settings(), rows(20), priced).endpoint("openai/smollm2")
    assert endpoint.api_base == DEFAULTS.default_api_base and endpoint.input_usd_per_million == 0.1


def test_examples_whose_demos_could_not_fit_in_the_prompt_version_are_refused_before_any_spend() -> None:
    big = rows(20, size=30_000)  # 8 demo slots (4 + 4) of 30,000 characters > 200,000
    failure = refusal(settings(), examples=big).failure
    assert failure.kind == "too_large"
    assert "max_bootstrapped_demos" in failure.error_message
    # The same examples fit once the export shows fewer demos.
    few = settings(evaluator_config={"max_bootstrapped_demos": 2, "max_labeled_demos": 2})
    assert build_spec(JOB, few, big, DEFAULTS).max_labeled_demos == 2


def test_low_scored_examples_do_not_count_against_the_limit() -> None:
    big = [SimpleNamespace(**{**vars(r), "score": 0.1}) for r in rows(20, size=30_000)]
    assert build_spec(JOB, settings(), big + rows(20), DEFAULTS)


def test_a_current_prompt_over_the_cap_is_refused() -> None:
    failure = refusal(settings(_active_prompt="p" * (MAX_PROMPT_CHARS + 1))).failure
    assert failure.kind == "too_large" and str(MAX_PROMPT_CHARS) in failure.error_message
