"""The whole pipeline — real DSPy MIPROv2 through LiteLLM over HTTP — against a scripted LLM.

The scripted model (tests/fakes/scripted_llm.py) only routes tickets right when the
prompt teaches it, so a better prompt really scores higher and the assertions below
are about measured improvement, not about exact strings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from services.optimizer.pipeline import run_job
from services.optimizer.spec import Example, JobResult, JobSpec, ModelEndpoint, Progress, Stage, Trial, Usage
from tests.fakes.scripted_llm import LABELS, ScriptedLLM, make_tickets

pytestmark = [
    pytest.mark.integration,
    # LiteLLM builds pydantic schemas lazily; pydantic warns about one of them. Not ours to fix.
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]
MODEL = "openai/scripted"


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def ticket_spec(llm: ScriptedLLM, **overrides: Any) -> JobSpec:
    gold = [Example(inputs={"ticket": t}, output=label, score=0.9) for t, label in make_tickets(30, seed=1)]
    # Wrong answers the users scored low: they must never become demos or references.
    wrong = [
        Example(inputs={"ticket": t}, output="engineering", score=0.2, source="feedback")
        for t, label in make_tickets(12, seed=2)
        if label != "engineering"
    ]
    fields: dict[str, Any] = {
        "job_id": uuid.uuid4(),
        "task_id": uuid.uuid4(),
        "task_name": "Support tickets",
        "input_fields": ["ticket"],
        "teacher_model": MODEL,
        "judge_model": MODEL,
        "models": {MODEL: ModelEndpoint(api_base=llm.api_base)},
        "examples": gold + wrong,
        "current_prompt": "Name the team for this support ticket.",
        "seed": 3,
        **overrides,
    }
    return JobSpec.model_validate(fields)


def run(spec: JobSpec) -> tuple[JobResult, list[Progress]]:
    events: list[Progress] = []
    return run_job(spec, events.append, lambda: False), events


def test_optimized_and_exported_prompts_beat_the_baseline(llm: ScriptedLLM) -> None:
    result, _ = run(ticket_spec(llm))

    assert result.baseline_score is not None and result.optimized_score is not None
    assert result.export_score is not None
    assert result.optimized_score > result.baseline_score
    assert result.export_score > result.baseline_score
    assert result.prompt_text.strip()


def test_every_figure_is_measured_and_consistent(llm: ScriptedLLM) -> None:
    result, events = run(ticket_spec(llm))

    assert result.llm_calls > 0 and result.llm_calls == llm.total_calls
    assert llm.calls["judge"] > 0 and llm.calls["proposer"] > 0 and llm.calls["plain"] == 2 * result.val_size
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.cost_usd == 0.0  # a loopback endpoint is free
    assert (result.train_size, result.val_size) == (24, 6)
    assert result.excluded_examples == 8
    trials = [e for e in events if isinstance(e, Trial)]
    assert result.trials_completed >= 1 and result.trials_completed == len(trials) == trials[-1].trial
    assert all(0.0 <= t.score <= 1.0 and t.best >= t.score - 1e-9 for t in trials)
    last_usage = [e for e in events if isinstance(e, Usage)][-1]
    assert (last_usage.llm_calls, last_usage.prompt_tokens) == (result.llm_calls, result.prompt_tokens)
    steps = [e.step for e in events if isinstance(e, Stage)]
    assert steps == ["loading", "evaluating", "compiling", "exporting"]
    assert (
        result.duration_seconds > 0
        and len(result.dataset_hash) == 64
        and result.dspy_version.startswith("3.")
    )
    assert result.dspy_state and result.optimizer == "MIPROv2" and not result.budget_exhausted
    assert len(result.examples) == 5 and all(ex.after is not None for ex in result.examples)


def test_demos_come_from_gold_examples_and_are_written_into_the_prompt(llm: ScriptedLLM) -> None:
    spec = ticket_spec(llm)
    result, _ = run(spec)

    gold = {(e.inputs["ticket"], e.output) for e in spec.examples if e.score >= spec.min_score_for_gold}
    assert result.demos, "the scripted model learns from demos, so the best program has some"
    for demo in result.demos:
        assert (demo["ticket"], demo["output"]) in gold
        assert f"Input: {demo['ticket']}\nOutput: {demo['output']}" in result.prompt_text
    assert "Reply with the output only" in result.prompt_text


def test_a_judge_free_metric_and_chain_of_thought_work_too(llm: ScriptedLLM) -> None:
    result, _ = run(ticket_spec(llm, metric="exact_match", module_type="chain_of_thought", max_trials=3))

    assert llm.calls["judge"] == 0
    assert result.trials_completed == 3
    assert result.export_score is not None and result.baseline_score is not None
    assert result.export_score > result.baseline_score


class GarblingLLM(ScriptedLLM):
    """Answers every third DSPy task request and every proposal with text no adapter can parse."""

    def _dspy_values(self, outputs: list[str], last: str, context: str) -> tuple[str, dict[str, Any]]:
        kind, values = super()._dspy_values(outputs, last, context)
        if kind == "proposer" or (kind == "task" and sum(self.calls.values()) % 3 == 0):
            return kind, {"garbage": "<<< \x00 >>>"}
        return kind, values

    def _answer(self, messages: list[dict[str, Any]], response_format: Any) -> tuple[str, str]:
        kind, content = super()._answer(messages, response_format)
        if '"garbage"' in content or "## garbage ##" in content:
            return kind, "I am not sure, let me think about tickets in general"
        return kind, content


def test_unparseable_answers_and_proposals_are_counted_not_fatal() -> None:
    with GarblingLLM() as llm:
        result, _ = run(ticket_spec(llm, max_trials=3))

    assert result.parse_failures > 0
    assert result.proposal_fallbacks > 0
    assert result.trials_completed == 3
    assert result.llm_calls == llm.total_calls
    assert set(LABELS) >= {d["output"] for d in result.demos}
