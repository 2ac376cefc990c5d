"""Which model strings a task may name, and when its cost budget can be enforced (issue 11, 6)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.model_policy import (
    DEFAULT_ALLOWED_MODELS,
    ModelPrice,
    ModelRules,
    model_problems,
    parse_patterns,
    url_problem,
)
from shared.settings import Settings

EMBEDDED = "http://127.0.0.1:8765/v1"


def rules(**overrides: object) -> ModelRules:
    values: dict[str, object] = {
        "patterns": parse_patterns(DEFAULT_ALLOWED_MODELS),
        "default_teacher": "openai/smollm2",
        "default_judge": "openai/smollm2",
        "default_api_base": EMBEDDED,
        **overrides,
    }
    return ModelRules(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "model",
    [
        "huggingface/https://evil.example/x",
        "huggingface/https:evil.example",
        "openai/http://10.0.0.1/v1",
        "https://evil.example/v1",
        "openai//evil.example",
        "file:/etc/passwd",
        "openai/unix:/run/socket",
        "openai/gpt-4o mini",
        "openai/../gpt-4o",
        "openai/gpt-4o\n",
        "",
        "x" * 300,
    ],
)
def test_url_like_or_malformed_model_strings_are_refused_whatever_the_patterns(model: str) -> None:
    assert url_problem(model) is not None
    assert rules(patterns=("*",)).refusal(model) is not None


@pytest.mark.parametrize(
    "model",
    [
        "openai/gpt-4o-mini",
        "gpt-4o",
        "anthropic/claude-3-5-sonnet-20240620",
        "claude-3-5-haiku@20241022",
        "ollama/llama3:8b",
        "bedrock/arn:aws:bedrock:us-east-1:123456789012:model/x",
    ],
)
def test_real_model_strings_are_not_mistaken_for_urls(model: str) -> None:
    assert url_problem(model) is None


def test_the_default_patterns_allow_common_hosted_models_and_refuse_other_providers() -> None:
    policy = rules()
    assert policy.refusal("openai/gpt-4o-mini") is None
    assert policy.refusal("anthropic/claude-3-5-sonnet") is None
    assert policy.refusal("gpt-4.1") is None and policy.refusal("claude-3-haiku") is None
    refusal = policy.refusal("huggingface/meta-llama/Llama-3-8B")
    assert refusal is not None and "KAIZEN_ALLOWED_MODELS" in refusal


def test_the_servers_default_models_are_allowed_even_outside_the_patterns() -> None:
    policy = rules(patterns=(), default_teacher="acme/teacher", default_judge="acme/judge")
    assert policy.refusal("acme/teacher") is None and policy.refusal("acme/judge") is None
    assert policy.refusal("openai/gpt-4o") is not None


def test_every_field_that_names_a_model_is_checked_and_named() -> None:
    settings = {
        "teacher_model": "huggingface/https://evil/x",
        "judge_model": "mistral/mistral-large",
        "evaluator_config": {"task_model": "openai/http://evil"},
    }
    assert set(model_problems(settings, rules())) == {
        "teacher_model",
        "judge_model",
        "evaluator_config.task_model",
    }


def test_a_budget_with_an_unpriced_model_is_refused() -> None:
    settings = {"teacher_model": "openai/my-finetune-xyz", "cost_budget": 1.0}
    problems = model_problems(settings, rules())
    assert list(problems) == ["cost_budget"]
    assert (
        "openai/my-finetune-xyz" in problems["cost_budget"]
        and "KAIZEN_MODEL_PRICES" in problems["cost_budget"]
    )
    assert model_problems({**settings, "cost_budget": None}, rules()) == {}


def test_an_operator_price_makes_the_budget_enforceable() -> None:
    priced = rules(
        prices={"openai/my-finetune-xyz": ModelPrice(input_usd_per_million=1, output_usd_per_million=2)}
    )
    assert model_problems({"teacher_model": "openai/my-finetune-xyz", "cost_budget": 1.0}, priced) == {}


def test_the_task_model_counts_for_the_budget_too() -> None:
    settings = {
        "teacher_model": "gpt-4o",
        "evaluator_config": {"task_model": "openai/unknown-xyz"},
        "cost_budget": 2,
    }
    assert "openai/unknown-xyz" in model_problems(settings, rules())["cost_budget"]


def test_default_models_on_a_loopback_server_are_free_and_hosted_ones_unknown_are_not() -> None:
    local = rules(default_teacher="openai/my-local", default_judge="openai/my-local")
    assert model_problems({"cost_budget": 0.5}, local) == {}
    remote = rules(
        default_teacher="openai/my-local",
        default_judge="openai/my-local",
        default_api_base="https://llm.corp/v1",
    )
    assert "cost_budget" in model_problems({"cost_budget": 0.5}, remote)


def test_settings_read_the_allowlist_and_the_prices_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAIZEN_ALLOWED_MODELS", " openai/* , acme/* ")
    monkeypatch.setenv(
        "KAIZEN_MODEL_PRICES", '{"acme/x": {"input_usd_per_million": 1.5, "output_usd_per_million": 3}}'
    )
    model_rules = Settings().model_rules
    assert model_rules.patterns == ("openai/*", "acme/*")
    assert model_rules.prices["acme/x"] == ModelPrice(input_usd_per_million=1.5, output_usd_per_million=3)
    assert model_rules.priced("acme/x")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KAIZEN_ALLOWED_MODELS", "huggingface/https://*"),
        ("KAIZEN_MODEL_PRICES", '{"acme/x": {"input_usd_per_million": -1, "output_usd_per_million": 3}}'),
        ("KAIZEN_MODEL_PRICES", '{"acme/x": {"input": 1}}'),
    ],
)
def test_bad_model_settings_stop_the_process_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
