"""LLM usage is counted by the model each call went to (task, teacher, judge), not by the job's teacher."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from services.optimizer.events_out import ProgressEmitter
from services.optimizer.metering import Meter
from services.optimizer.spec import ModelUsage, Usage


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _usage(**by_model: tuple[int, int, int, float]) -> Usage:
    split = {
        model.replace("__", "/"): ModelUsage(llm_calls=c, prompt_tokens=p, completion_tokens=k, cost_usd=usd)
        for model, (c, p, k, usd) in by_model.items()
    }
    return Usage(
        llm_calls=sum(m.llm_calls for m in split.values()),
        prompt_tokens=sum(m.prompt_tokens for m in split.values()),
        completion_tokens=sum(m.completion_tokens for m in split.values()),
        cost_usd=sum(m.cost_usd for m in split.values()),
        by_model=split,
    )


def test_a_meter_splits_its_totals_by_model() -> None:
    meter = Meter()
    meter.add("openai/task", 10, 2, 0.001)
    meter.add("openai/teacher", 100, 50, None)
    meter.add("openai/task", 5, 1, 0.002)
    usage = meter.snapshot()
    assert usage.by_model == {"openai/task": (2, 15, 3, 0.003), "openai/teacher": (1, 100, 50, 0.0)}
    assert (usage.llm_calls, usage.prompt_tokens, usage.unpriced_calls) == (3, 115, 1)


def test_usage_lines_add_each_models_growth_once() -> None:
    emitter: Any = ProgressEmitter(None, None, None, 1)  # type: ignore[arg-type]  # meter() needs neither
    task, teacher = "unit-split/task", "unit-split/teacher"
    calls = {m: _value("kaizen_llm_calls_total", model=m) for m in (task, teacher, "unattributed")}
    prompt = _value("kaizen_llm_tokens_total", model=teacher, kind="prompt")

    emitter.meter(_usage(**{"unit-split__task": (4, 40, 4, 0.0)}))
    emitter.meter(_usage(**{"unit-split__task": (6, 60, 6, 0.0), "unit-split__teacher": (2, 500, 80, 0.0)}))
    emitter.meter(_usage(**{"unit-split__task": (6, 60, 6, 0.0), "unit-split__teacher": (2, 500, 80, 0.0)}))

    assert _value("kaizen_llm_calls_total", model=task) == calls[task] + 6
    assert _value("kaizen_llm_calls_total", model=teacher) == calls[teacher] + 2
    assert _value("kaizen_llm_tokens_total", model=teacher, kind="prompt") == prompt + 500
    assert _value("kaizen_llm_calls_total", model="unattributed") == calls["unattributed"]


def test_calls_a_total_holds_beyond_its_split_are_counted_as_unattributed() -> None:
    emitter: Any = ProgressEmitter(None, None, None, 1)  # type: ignore[arg-type]
    before = _value("kaizen_llm_calls_total", model="unattributed")
    emitter.meter(_usage(**{"unit-rest__task": (3, 30, 3, 0.0)}))
    emitter.meter(
        Usage(llm_calls=5, prompt_tokens=50, completion_tokens=5, cost_usd=0.0)
    )  # a line without a split
    assert _value("kaizen_llm_calls_total", model="unattributed") == before + 2
