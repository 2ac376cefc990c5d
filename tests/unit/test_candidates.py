"""Prompt candidates under each contract: rendering, grounded bodies, vetting, the choice (no DSPy)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.optimizer.pipeline.candidates import (
    Candidate,
    Scored,
    TaskFacts,
    choose,
    finalists,
    grounded_bodies,
    is_valid_body,
    output_rule,
    render_file,
    shown_as_demo,
    strip_rendered_demos,
    vet_proposal,
    wrap_instruction,
)
from services.optimizer.pipeline.dataset import label_space, majority_rate
from services.optimizer.spec import Example
from shared.prompt_contract import render_messages

FACTS = TaskFacts("sentiment", "", ("text",), ("positive", "negative"))
DEMOS = [{"text": "great {food}", "output": "positive"}, {"text": "cold", "output": "negative"}]
CONTRACTS = ("system", "template", "messages")


@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_grounded_body_is_a_valid_prompt_under_its_contract(contract: str) -> None:
    bodies = grounded_bodies(contract, FACTS)  # type: ignore[arg-type]
    assert len(bodies) >= 3
    assert all(is_valid_body(contract, c.body, ["text"]) for c in bodies)  # type: ignore[arg-type]


def test_a_two_label_task_gets_the_question_in_both_orders_phrased_for_its_place() -> None:
    bodies = {c.name: c.body for c in grounded_bodies("template", FACTS)}
    assert bodies["grounded:question:positive/instruction_first"] == (
        "Is the following text positive or negative? Answer with one word.\n\nText: {text}\nAnswer:"
    )
    assert bodies["grounded:question:negative/input_first"] == (
        "Text: {text}\n\nIs this text negative or positive? Answer with one word."
    )


def test_free_text_tasks_get_the_format_rule_not_a_label_rule() -> None:
    assert output_rule([]).startswith("Reply with the output only")
    assert output_rule(["a", "b", "c"]) == "Answer with exactly one of: a, b, c."


def test_template_demos_are_shown_filled_and_come_back_unchanged_through_str_format() -> None:
    body = wrap_instruction("template", "Is it {good}?", ["text"])
    text = render_file("template", body, DEMOS, ["text"])
    messages = render_messages("template", text, {"text": "tasty"}, ["text"])
    assert len(messages) == 1 and messages[0]["role"] == "user"
    content = messages[0]["content"]
    assert content.startswith("Examples:\n\nText: great {food}\nAnswer: positive\n\nText: cold")
    assert content.endswith("Is it {good}?\n\nText: tasty\nAnswer:")


def test_messages_demos_become_user_and_assistant_turns_before_the_real_input() -> None:
    body = wrap_instruction("messages", "Label the sentiment.", ["text"])
    text = render_file("messages", body, DEMOS, ["text"])
    messages = render_messages("messages", text, {"text": "tasty"}, ["text"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == "Text: great {food}" and messages[2]["content"] == "positive"
    assert messages[-1]["content"] == "Text: tasty"
    assert json.loads(text)  # still a JSON list on disk


def test_system_demos_follow_the_instructions_and_are_stripped_for_the_next_job() -> None:
    text = render_file("system", "Label the sentiment.", DEMOS, ["text"])
    assert "Examples:\n\nInput: great {food}\nOutput: positive" in text
    assert strip_rendered_demos("system", text, ["text"]) == "Label the sentiment."
    assert render_file("system", "Label it.", [], ["text"]) == "Label it."  # byte for byte


@pytest.mark.parametrize("contract", CONTRACTS)
def test_a_previous_exports_demos_are_stripped_under_every_contract(contract: str) -> None:
    fields = ["text", "topic"]
    demos = [
        {"text": "great {food}", "topic": "food", "output": "positive"},
        {"text": "cold", "topic": "soup", "output": "negative"},
    ]
    for layout in ("instruction_first", "input_first"):
        body = wrap_instruction(contract, "Say positive or negative.\n\nOne word.", fields, layout)  # type: ignore[arg-type]
        exported = render_file(contract, body, demos, fields)  # type: ignore[arg-type]
        assert exported != body
        stripped = strip_rendered_demos(contract, exported, fields)  # type: ignore[arg-type]
        assert is_valid_body(contract, stripped, fields)  # type: ignore[arg-type]
        assert "great" not in stripped and "Say positive or negative." in stripped
        assert strip_rendered_demos(contract, body, fields) == body  # type: ignore[arg-type]


def test_a_template_of_the_users_own_with_an_examples_heading_is_left_alone() -> None:
    text = "Examples:\n\nThe sky is blue: a fact.\n\nText: {text}\nAnswer:"
    assert strip_rendered_demos("template", text, ["text"]) == text


def test_message_turns_with_a_placeholder_are_the_users_template_not_demos() -> None:
    body = json.dumps(
        [
            {"role": "user", "content": "Context: {topic}"},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Text: {text}"},
        ]
    )
    assert strip_rendered_demos("messages", body, ["text", "topic"]) == body


@given(st.text(min_size=1, max_size=60), st.sampled_from(CONTRACTS))
def test_any_instruction_wraps_into_a_valid_body(instruction: str, contract: str) -> None:
    body = wrap_instruction(contract, instruction, ["text", "topic"])  # type: ignore[arg-type]
    if instruction.strip():
        assert is_valid_body(contract, body, ["text", "topic"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("proposal", "reason"),
    [
        ("short", "too short"),
        ("[#dataset_description]#script_code#task_program#script_language#", "markup"),
        ("You are a writer that helps people create great stories about dragons.", "off-task"),
        ("positive " * 40, "repetitive"),
        ("Decide whether the review text is positive or negative.", None),
    ],
)
def test_degenerate_or_off_task_proposals_are_dropped(proposal: str, reason: str | None) -> None:
    assert vet_proposal(proposal, FACTS) == reason


def test_the_choice_is_the_best_on_validation_and_a_tie_keeps_the_baseline() -> None:
    base = Scored(Candidate("baseline", "b"), "b", 0.5)
    better = Scored(Candidate("grounded:x", "g"), "g", 0.75)
    tie = Scored(Candidate("grounded:y", "y"), "y", 0.5)
    assert choose([base, better, tie]).candidate.name == "grounded:x"
    assert choose([tie, base]).candidate.name == "baseline"


def test_template_layouts_quote_the_input_or_drop_the_cue_and_the_application_fills_them() -> None:
    bodies = {c.name: c.body for c in grounded_bodies("template", FACTS)}
    label = "Read the text and give its label. Answer with one word: positive or negative."
    assert bodies["grounded:label/instruction_first"] == f"{label}\n\nText: {{text}}\nAnswer:"
    assert bodies["grounded:label/quoted_input"] == f'{label}\n\nText: "{{text}}"\nAnswer:'
    assert bodies["grounded:label/no_cue"] == f"{label}\n\nText: {{text}}"
    [message] = render_messages(
        "template", bodies["grounded:label/quoted_input"], {"text": 'say "hi" {x}'}, ["text"]
    )
    assert message["content"].endswith('Text: "say "hi" {x}"\nAnswer:')


def test_finalists_are_the_best_on_validation_plus_the_baseline_in_their_order() -> None:
    scored = [
        Scored(Candidate("baseline", "b"), "b", 0.2),
        Scored(Candidate("g1", "1"), "1", 0.9),
        Scored(Candidate("g2", "2"), "2", 0.5),
        Scored(Candidate("g3", "3"), "3", 0.9),
        Scored(Candidate("g4", "4"), "4", 0.7),
    ]
    assert [s.candidate.name for s in finalists(scored, 2)] == ["baseline", "g1", "g3"]
    assert [s.candidate.name for s in finalists(scored, 3)] == ["baseline", "g1", "g3", "g4"]


def test_a_later_round_ranks_the_finalists_by_their_wider_score_not_by_validation() -> None:
    scored = [
        Scored(Candidate("baseline", "b"), "b", 0.9, selection=0.5, selection_rows=48),
        Scored(Candidate("g:lucky", "l"), "l", 1.0, selection=0.6, selection_rows=48),
        Scored(Candidate("g:steady", "s"), "s", 0.8, selection=0.8, selection_rows=48),
        Scored(Candidate("g:next", "n"), "n", 0.7, selection=0.7, selection_rows=48),
    ]
    assert [s.candidate.name for s in finalists(scored, 2)] == ["baseline", "g:steady", "g:next"]


def test_a_finalist_is_chosen_by_its_wider_score_and_a_tie_still_keeps_the_baseline() -> None:
    base = Scored(Candidate("baseline", "b"), "b", 0.5, selection=0.55, selection_rows=80)
    lucky = Scored(Candidate("g:lucky", "l"), "l", 0.8, selection=0.6, selection_rows=80)
    steady = Scored(Candidate("g:steady", "s"), "s", 0.7, selection=0.7, selection_rows=80)
    assert choose([base, lucky, steady]).candidate.name == "g:steady"
    assert (
        choose([base, Scored(Candidate("g:same", "x"), "x", 0.9, selection=0.55)]).candidate.name
        == "baseline"
    )


def test_a_candidate_shows_an_example_when_a_demo_has_its_inputs() -> None:
    with_demos = Candidate("optimized", "b", tuple(DEMOS))
    assert shown_as_demo(with_demos, {"text": "cold"}, ["text"])
    assert not shown_as_demo(with_demos, {"text": "warm"}, ["text"])
    assert not shown_as_demo(Candidate("baseline", "b"), {"text": "cold"}, ["text"])


def test_a_label_set_is_few_repeated_short_outputs() -> None:
    assert label_space(["Positive", "negative", "positive.", "Negative"]) == ["negative", "positive"]
    assert label_space(["a long free answer", "another one"]) == []
    assert label_space(["x", "x", "y"]) == []  # y seen once: not a label set


def test_the_majority_rate_is_the_share_of_the_most_frequent_label() -> None:
    rows = [Example(inputs={"text": str(i)}, output=o, score=1) for i, o in enumerate(["a", "a", "b", "a"])]
    assert majority_rate(rows, ["a", "b"]) == 0.75
