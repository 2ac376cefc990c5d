"""The pre-run estimate prices models as the job's meter will: the operator's prices first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.api.routes.optimize import _estimate
from shared.llm.pricing import OptimizerSettings, Price, estimate_job_cost
from shared.model_policy import ModelPrice
from shared.settings import Settings

FINETUNE = "openai/ft-acme-xyz"


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(home=tmp_path, **values)


def test_an_operator_price_prices_a_model_nobody_else_knows() -> None:
    unpriced = estimate_job_cost(40, FINETUNE, "gpt-4o-mini", OptimizerSettings())
    assert unpriced.unpriced_models == (FINETUNE,)
    priced = estimate_job_cost(
        40, FINETUNE, "gpt-4o-mini", OptimizerSettings(), prices={FINETUNE: Price(2, 6)}
    )
    assert priced.unpriced_models == () and priced.estimated_cost_usd > unpriced.estimated_cost_usd
    assert priced.estimated_llm_calls == unpriced.estimated_llm_calls


def test_an_operator_price_overrides_the_list_price() -> None:
    listed = estimate_job_cost(40, "gpt-4o", "gpt-4o", OptimizerSettings())
    free = estimate_job_cost(40, "gpt-4o", "gpt-4o", OptimizerSettings(), prices={"gpt-4o": Price(0, 0)})
    assert listed.estimated_cost_usd > 0 and free.estimated_cost_usd == 0


def test_the_api_estimate_uses_kaizen_model_prices(tmp_path: Path) -> None:
    task = {"teacher_model": FINETUNE, "judge_model": FINETUNE}
    plain = _estimate(task, {}, 40, _settings(tmp_path))
    assert plain.unpriced_models == (FINETUNE,) and plain.estimated_cost_usd == 0
    price = ModelPrice(input_usd_per_million=2.0, output_usd_per_million=6.0)
    priced = _estimate(task, {}, 40, _settings(tmp_path, model_prices={FINETUNE: price}))
    assert priced.unpriced_models == ()
    expected = estimate_job_cost(
        40, FINETUNE, FINETUNE, OptimizerSettings(), prices={FINETUNE: Price(2.0, 6.0)}
    )
    assert expected.estimated_cost_usd > 0
    assert priced.estimated_cost_usd == pytest.approx(expected.estimated_cost_usd)


def test_a_price_for_the_embedded_default_model_is_charged_like_the_job_charges_it(tmp_path: Path) -> None:
    free = _estimate({}, {}, 40, _settings(tmp_path))
    assert free.estimated_cost_usd == 0 and free.unpriced_models == ()
    price = ModelPrice(input_usd_per_million=0.1, output_usd_per_million=0.2)
    billed = _estimate({}, {}, 40, _settings(tmp_path, model_prices={"openai/smollm2": price}))
    assert billed.estimated_cost_usd > 0
