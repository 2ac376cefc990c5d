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

from services.optimizer.pipeline.dataset import prepare_dataset
from services.optimizer.pipeline.run import run_job
from services.optimizer.spec import (
    Example,
    JobFailed,
    JobResult,
    JobSpec,
    ModelEndpoint,
    Progress,
    Stage,
    Trial,
    Usage,
)
from shared.prompt_contract import render_messages
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
    result, events = run(ticket_spec(llm, metric="llm_judge"))

    assert result.llm_calls > 0 and result.llm_calls == llm.total_calls
    assert llm.calls["judge"] > 0 and llm.calls["proposer"] > 0 and llm.calls["plain"] > 0
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.cost_usd == 0.0  # a loopback endpoint is free
    assert (result.train_size, result.val_size, result.test_size) == (24, 6, 0)
    assert result.excluded_examples == 8
    assert result.metric == "llm_judge" and result.prompt_contract == "system"
    trials = [e for e in events if isinstance(e, Trial)]
    assert result.trials_completed >= 1 and result.trials_completed == len(trials) == trials[-1].trial
    assert all(0.0 <= t.score <= 1.0 and t.best >= t.score - 1e-9 for t in trials)
    last_usage = [e for e in events if isinstance(e, Usage)][-1]
    assert (last_usage.llm_calls, last_usage.prompt_tokens) == (result.llm_calls, result.prompt_tokens)
    # Every call is counted under the model it went to, and the split adds up to the totals.
    assert sum(m.llm_calls for m in last_usage.by_model.values()) == result.llm_calls
    assert sum(m.prompt_tokens for m in last_usage.by_model.values()) == result.prompt_tokens
    steps = [e.step for e in events if isinstance(e, Stage)]
    assert steps == ["loading", "evaluating", "compiling", "exporting"]
    [exporting] = [e for e in events if isinstance(e, Stage) and e.step == "exporting"]
    assert exporting.count == len(result.candidates) > 1
    assert (
        result.duration_seconds > 0
        and len(result.dataset_hash) == 64
        and result.dspy_version.startswith("3.")
    )
    assert result.dspy_state and result.optimizer == "MIPROv2" and not result.budget_exhausted
    assert len(result.examples) == 5 and all(ex.after is not None for ex in result.examples)


def test_the_export_is_the_best_rendered_candidate_on_validation(llm: ScriptedLLM) -> None:
    result, _ = run(ticket_spec(llm))

    names = [c.name for c in result.candidates]
    assert names[0] == "baseline" and "optimized" in names and any(n.startswith("grounded:") for n in names)
    chosen = next(c for c in result.candidates if c.name == result.chosen_candidate)
    assert chosen.score == result.export_score == max(c.score for c in result.candidates)
    assert next(c for c in result.candidates if c.name == "baseline").score == result.baseline_score
    # The optimizer's program, called through the contract inside DSPy and re-scored outside it.
    assert result.program_export_score is not None and result.optimized_score is not None
    assert abs(result.optimized_score - result.program_export_score) <= 0.05


def test_labels_are_found_and_scored_by_label_match_without_a_judge(llm: ScriptedLLM) -> None:
    result, _ = run(ticket_spec(llm))

    assert result.metric == "label_match" and sorted(result.labels) == sorted(LABELS)
    assert llm.calls["judge"] == 0


def test_demos_come_from_gold_examples(llm: ScriptedLLM) -> None:
    spec = ticket_spec(llm)
    result, _ = run(spec)

    gold = {(e.inputs["ticket"], e.output) for e in spec.examples if e.score >= spec.min_score_for_gold}
    assert result.demos, "the scripted model learns from demos, so the best program has some"
    for demo in result.demos:
        assert (demo["ticket"], demo["output"]) in gold


def test_the_exported_template_called_as_the_docs_show_scores_what_the_job_reported(llm: ScriptedLLM) -> None:
    spec = ticket_spec(
        llm, prompt_contract="template", current_prompt="Name the team.\nTicket: {ticket}\nTeam:"
    )
    result, _ = run(spec)
    assert result.export_score is not None and result.baseline_score is not None
    assert result.export_score > result.baseline_score

    import openai

    # Exactly the lines docs/contracts.md gives for the template contract, against the same model.
    client = openai.OpenAI(base_url=llm.api_base, api_key="local")
    template = result.prompt_text
    right = 0
    validation = prepare_dataset(spec).val
    for example in validation:
        messages = [{"role": "user", "content": template.format(**example.inputs)}]
        assert messages == render_messages("template", template, example.inputs, ["ticket"])
        response = client.chat.completions.create(model="scripted", messages=messages, temperature=0)
        right += (response.choices[0].message.content or "").strip() == example.output
    assert right / len(validation) == result.export_score


def test_a_judge_that_cannot_tell_right_from_wrong_fails_the_job_before_any_trial() -> None:
    class BlindJudge(ScriptedLLM):
        def _dspy_values(self, outputs: list[str], last: str, context: str) -> tuple[str, dict[str, Any]]:
            if "score" in outputs:
                return "judge", {"score": 0.5}
            return super()._dspy_values(outputs, last, context)

    with BlindJudge() as llm, pytest.raises(JobFailed) as failed:
        run(ticket_spec(llm, metric="llm_judge"))
    assert failed.value.failure.kind == "judge_unreliable"
    assert "cannot tell right answers from wrong ones" in failed.value.failure.error_message
    assert llm.calls["proposer"] == 0


def test_a_judge_free_metric_and_chain_of_thought_work_too(llm: ScriptedLLM) -> None:
    result, _ = run(ticket_spec(llm, metric="exact_match", module_type="chain_of_thought", max_trials=3))

    assert llm.calls["judge"] == 0
    assert result.trials_completed == 3
    assert result.export_score is not None and result.baseline_score is not None
    assert result.export_score > result.baseline_score


class GarblingLLM(ScriptedLLM):
    """Answers every proposal with off-task text a weak teacher might write."""

    def _dspy_values(self, outputs: list[str], last: str, context: str) -> tuple[str, dict[str, Any]]:
        kind, values = super()._dspy_values(outputs, last, context)
        if kind == "proposer":
            return kind, {"proposed_instruction": "You are a writer that helps people create great stories."}
        return kind, values


def test_off_task_proposals_are_dropped_and_counted_not_fatal() -> None:
    with GarblingLLM() as llm:
        result, _ = run(ticket_spec(llm, max_trials=3))

    assert result.proposals_dropped > 0
    assert result.trials_completed == 3
    assert result.llm_calls == llm.total_calls
    assert "stories" not in result.prompt_text
    assert set(LABELS) >= {d["output"] for d in result.demos}


def test_gepa_runs_with_the_same_trials_candidates_and_export_path(llm: ScriptedLLM) -> None:
    result, events = run(ticket_spec(llm, optimizer="gepa", max_trials=3))

    assert result.optimizer == "GEPA"
    trials = [e for e in events if isinstance(e, Trial)]
    assert trials and result.trials_completed == len(trials)
    assert {"baseline", "optimized"} <= {c.name for c in result.candidates}
    assert result.export_score is not None and result.baseline_score is not None
    assert result.export_score >= result.baseline_score
    assert result.llm_calls == llm.total_calls


class SystemDeafLLM(ScriptedLLM):
    """Like the embedded 135M model: answers plain calls as if there were no system message."""

    def _answer(self, messages: list[dict[str, Any]], response_format: Any) -> tuple[str, str]:
        plain = response_format is None and not any("[[ ## " in str(m.get("content", "")) for m in messages)
        if plain and messages and messages[0].get("role") == "system":
            messages = [m for m in messages if m.get("role") != "system"]
        return super()._answer(messages, response_format)


def test_a_model_that_ignores_system_prompts_is_said_plainly_and_the_baseline_is_kept() -> None:
    with SystemDeafLLM() as llm:
        result, _ = run(ticket_spec(llm, max_trials=3))

    assert result.no_prompt_score is not None and result.baseline_score is not None
    assert result.user_message_score is not None
    assert result.export_score == result.baseline_score  # nothing beats it, so nothing is proposed
    assert result.chosen_candidate == "baseline"
    assert any("ignores system prompts" in note for note in result.notes)
