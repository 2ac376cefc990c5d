"""Prices, the split rule, MIPROv2's plan and the cost estimate (shared.llm.pricing)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.llm.pricing import (
    AUTO_RUN_SETTINGS,
    MIN_MINIBATCH_SIZE,
    OptimizerSettings,
    Price,
    estimate_job_cost,
    is_local,
    model_price,
    plan_mipro,
    split_sizes,
    trial_task_calls,
)


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o", Price(2.50, 10.00)),
        ("openai/gpt-4o", Price(2.50, 10.00)),
        ("openai/gpt-4o-mini", Price(0.15, 0.60)),
        ("anthropic/claude-3-5-sonnet-20241022", Price(3.00, 15.00)),
        ("anthropic/claude-3-5-haiku-latest", Price(0.80, 4.00)),
    ],
)
def test_common_hosted_models_have_their_list_price(model: str, price: Price) -> None:
    found = model_price(model)
    assert found is not None
    assert found.input_per_million == pytest.approx(price.input_per_million)
    assert found.output_per_million == pytest.approx(price.output_per_million)


@pytest.mark.parametrize(
    ("model", "api_base"),
    [
        ("openai/smollm2", None),
        ("openai/smollm2", "http://127.0.0.1:8765/v1"),
        ("openai/gpt-4o", "http://127.0.0.1:9999/v1"),
        ("openai/llama3", "http://localhost:11434/v1"),
        ("openai/llama3", "http://[::1]:8080/v1"),
    ],
)
def test_embedded_and_loopback_models_are_free(model: str, api_base: str | None) -> None:
    assert is_local(model, api_base)
    assert model_price(model, api_base) == Price(0.0, 0.0)


def test_a_remote_endpoint_is_not_local() -> None:
    assert not is_local("openai/gpt-4o", "https://api.example.com/v1")


def test_an_unknown_model_has_no_price() -> None:
    assert model_price("someprovider/no-such-model-xyz") is None


def test_the_api_can_import_pricing_without_dspy_or_litellm() -> None:
    code = (
        "import sys, shared.llm.pricing as p; p.model_price('gpt-4o');"
        "print(sorted({'dspy', 'litellm'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_seed_example_splits_52_into_41_and_11() -> None:
    assert split_sizes(52) == (41, 11)


@given(st.integers(min_value=2, max_value=100_000))
def test_validation_gets_the_ceiling_of_a_fifth(n: int) -> None:
    train, val = split_sizes(n)
    assert train + val == n
    assert val == -(-n // 5)
    assert train >= 1 and val >= 1


def test_auto_presets_mirror_dspy() -> None:
    from dspy.teleprompt import mipro_optimizer_v2 as mipro

    assert mipro.AUTO_RUN_SETTINGS == AUTO_RUN_SETTINGS
    assert mipro.MIN_MINIBATCH_SIZE == MIN_MINIBATCH_SIZE


@pytest.mark.parametrize("val_size", [3, 11, 50, 51, 150])
@pytest.mark.parametrize("auto", ["light", "medium"])
def test_the_plan_is_what_mipro_would_pick(val_size: int, auto: str) -> None:
    import random

    import dspy

    optimizer = dspy.MIPROv2(
        metric=lambda *a: 1.0, prompt_model=dspy.LM("openai/x"), task_model=dspy.LM("openai/x")
    )
    optimizer.auto, optimizer.rng = auto, random.Random(0)
    program = dspy.Predict("question -> answer")
    trials, valset, minibatch, instruct, fewshot = optimizer._set_hyperparams_from_run_mode(
        program, None, True, False, list(range(val_size)), None, None
    )
    plan = plan_mipro(val_size, OptimizerSettings(auto=auto))  # type: ignore[arg-type]
    assert (plan.num_trials, plan.eval_size, plan.minibatch) == (trials, len(valset), minibatch)
    assert (plan.num_instruct_candidates, plan.num_fewshot_candidates) == (instruct, fewshot)


def test_small_validation_sets_cost_eleven_task_calls_per_example_on_light() -> None:
    plan = plan_mipro(11, OptimizerSettings())
    assert plan.num_trials == 10
    assert trial_task_calls(plan) == 11 * 11


def test_large_validation_sets_plateau_near_650_task_calls_on_light() -> None:
    calls = [trial_task_calls(plan_mipro(val, OptimizerSettings())) for val in (100, 300, 5000)]
    assert all(600 <= c <= 700 for c in calls)
    assert len(set(calls)) == 1


def test_max_trials_sets_the_trials_and_a_fitting_candidate_count() -> None:
    plan = plan_mipro(4, OptimizerSettings(max_trials=2))
    assert (plan.auto, plan.num_trials, plan.num_fewshot_candidates) == (None, 2, 3)
    assert plan_mipro(4, OptimizerSettings(max_trials=30)).num_fewshot_candidates == 6


def test_the_estimate_follows_the_split_and_the_plan() -> None:
    estimate = estimate_job_cost(52, "gpt-4o", "gpt-4o-mini", OptimizerSettings())
    assert (estimate.train_size, estimate.val_size, estimate.max_trials) == (41, 11, 10)
    assert (estimate.teacher_model, estimate.judge_model, estimate.task_model) == (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o",
    )
    assert 0.05 < estimate.estimated_cost_usd < 5.0
    assert estimate.estimated_llm_calls > 2 * 11 * 11  # trials, baseline, export and a judge call each
    assert estimate.unpriced_models == ()


def test_an_exact_match_metric_needs_no_judge_calls() -> None:
    judged = estimate_job_cost(52, "gpt-4o", "gpt-4o-mini", OptimizerSettings())
    exact = estimate_job_cost(52, "gpt-4o", "gpt-4o-mini", OptimizerSettings(metric="exact_match"))
    assert exact.estimated_llm_calls < judged.estimated_llm_calls
    assert exact.estimated_cost_usd < judged.estimated_cost_usd


def test_the_embedded_model_costs_nothing() -> None:
    estimate = estimate_job_cost(52, "openai/smollm2", "openai/smollm2", OptimizerSettings())
    assert estimate.estimated_cost_usd == 0.0
    assert estimate.estimated_llm_calls > 0


def test_an_unknown_model_is_reported_as_unpriced() -> None:
    estimate = estimate_job_cost(52, "acme/secret-model", "gpt-4o-mini", OptimizerSettings())
    assert estimate.unpriced_models == ("acme/secret-model",)


def test_a_task_model_other_than_the_teacher_is_priced_as_itself() -> None:
    cheap = estimate_job_cost(52, "gpt-4o", "gpt-4o-mini", OptimizerSettings(task_model="gpt-4o-mini"))
    dear = estimate_job_cost(52, "gpt-4o", "gpt-4o-mini", OptimizerSettings())
    assert cheap.task_model == "gpt-4o-mini"
    assert cheap.estimated_cost_usd < dear.estimated_cost_usd
