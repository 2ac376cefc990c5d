"""The prompt contract: which prompt files are valid, and the messages an application sends."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from shared.prompt_contract import (
    MAX_PROMPT_CHARS,
    PromptContractError,
    parse_prompt,
    placeholders,
    render_messages,
)

FIELDS = ["text", "question", "context"]

field_names = st.sampled_from(FIELDS)
# Any text, braces included: values are inserted verbatim, never parsed as a template.
values = st.text(max_size=40)
any_literal = st.text(max_size=15)
inputs_strategy = st.fixed_dictionaries({name: values for name in FIELDS})


def escape(literal: str) -> str:
    return literal.replace("{", "{{").replace("}", "}}")


@st.composite
def templates(draw: st.DrawFn, literals: st.SearchStrategy[str] = any_literal) -> str:
    """A valid template: escaped literal text around at least one ``{field}`` placeholder."""
    pieces = draw(st.lists(st.tuples(literals, field_names), min_size=1, max_size=4))
    tail = draw(literals)
    return "".join(escape(literal) + "{" + name + "}" for literal, name in pieces) + escape(tail)


@st.composite
def message_lists(draw: st.DrawFn, literals: st.SearchStrategy[str] = any_literal) -> list[dict[str, str]]:
    """A valid ``messages`` prompt: some turns, one of them a user turn with a placeholder."""
    others = draw(
        st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["system", "user", "assistant"]), "content": literals}
            ).map(lambda m: {"role": m["role"], "content": escape(m["content"])}),
            max_size=4,
        )
    )
    position = draw(st.integers(0, len(others)))
    return [*others[:position], {"role": "user", "content": draw(templates(literals))}, *others[position:]]


def yaml_text(data: object) -> str:
    """YAML as PyYAML writes it: the library most applications read their prompt file with."""
    return str(yaml.safe_dump(data, allow_unicode=True))


# ----------------------------------------------------------------------------- properties


@given(templates(), inputs_strategy)
def test_a_template_renders_exactly_as_str_format_would(template: str, inputs: dict[str, str]) -> None:
    assert render_messages("template", template, inputs, FIELDS) == [
        {"role": "user", "content": template.format(**inputs)}
    ]


@given(message_lists(), inputs_strategy)
def test_a_json_messages_prompt_renders_each_turn_with_str_format(
    messages: list[dict[str, str]], inputs: dict[str, str]
) -> None:
    rendered = render_messages("messages", json.dumps(messages), inputs, FIELDS)
    assert rendered == [{"role": m["role"], "content": m["content"].format(**inputs)} for m in messages]


# YAML emitters do not round-trip C0/C1 controls (NEL, …) or Unicode line separators;
# a prompt file with those is not what this property is about.
yaml_safe_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), whitelist_characters="\n"), max_size=20
)


@given(message_lists(yaml_safe_text), inputs_strategy)
def test_the_same_messages_written_as_yaml_render_the_same_as_json(
    messages: list[dict[str, str]], inputs: dict[str, str]
) -> None:
    as_json = render_messages("messages", json.dumps(messages), inputs, FIELDS)
    assert render_messages("messages", yaml_text(messages), inputs, FIELDS) == as_json


@given(st.text(max_size=60))
def test_escaped_text_has_no_placeholders_and_renders_as_itself(literal: str) -> None:
    template = escape(literal) + "{text}"
    assert placeholders(template) == ["text"]
    assert render_messages("template", template, {"text": "X"}, ["text"])[0]["content"] == literal + "X"


@given(st.text(min_size=1).filter(str.strip), values)
def test_under_system_the_file_is_the_system_message_and_a_lone_input_its_bare_value(
    prompt: str, value: str
) -> None:
    assert render_messages("system", prompt, {"text": value}, ["text"]) == [
        {"role": "system", "content": prompt},
        {"role": "user", "content": value},
    ]


@given(st.sampled_from(["system", "template", "messages"]), st.text(max_size=200))
def test_any_text_is_either_a_valid_prompt_or_a_contract_error(contract: str, text: str) -> None:
    try:
        parsed = parse_prompt(contract, text, FIELDS)  # type: ignore[arg-type]
    except PromptContractError as exc:
        assert str(exc)
    else:
        assert set(parsed.placeholders) <= set(FIELDS)


# ----------------------------------------------------------------------------- system


def test_several_inputs_become_name_value_lines_in_the_declared_order() -> None:
    rendered = render_messages("system", "Classify.", {"b": "2", "a": "{1}"}, ["a", "b"])
    assert rendered[1] == {"role": "user", "content": "a: {1}\nb: 2"}


def test_a_system_prompt_may_contain_braces_because_it_is_sent_verbatim() -> None:
    assert parse_prompt("system", 'Answer as {"label": …}', ["text"]).placeholders == ()


def test_an_empty_or_blank_prompt_is_refused_under_every_contract() -> None:
    for contract in ("system", "template", "messages"):
        with pytest.raises(PromptContractError, match="empty"):
            parse_prompt(contract, " \n\t", ["text"])  # type: ignore[arg-type]


def test_a_prompt_over_the_size_cap_is_refused() -> None:
    with pytest.raises(PromptContractError, match="at most"):
        parse_prompt("system", "x" * (MAX_PROMPT_CHARS + 1))


def test_a_missing_input_is_a_contract_error_not_a_key_error() -> None:
    with pytest.raises(PromptContractError, match="'text'"):
        render_messages("system", "Classify.", {"other": "x"}, ["text"])
    with pytest.raises(PromptContractError, match="'text'"):
        render_messages("template", "Text: {text}", {}, ["text"])


# ----------------------------------------------------------------------------- template


def test_placeholders_are_listed_once_in_order_of_first_appearance() -> None:
    assert placeholders("{b} {a} {b} {{c}}") == ["b", "a"]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("Text: {text.upper}", "bare input field name"),
        ("Text: {text[0]}", "bare input field name"),
        ("Text: {}", "bare input field name"),
        ("Text: {0}", "bare input field name"),
        ("Text: {text!r}", "conversion"),
        ("Text: {text:>10}", "format spec"),
        ("Text: {text:{text}}", "format spec"),
        ("Text: {text} }", "Single '}'"),
        ("Text: {text", "expected '}'"),
    ],
)
def test_a_template_with_anything_but_bare_placeholders_is_refused(template: str, reason: str) -> None:
    with pytest.raises(PromptContractError, match=reason):
        parse_prompt("template", template, ["text"])


def test_a_template_placeholder_must_name_an_input_field_of_the_task() -> None:
    with pytest.raises(PromptContractError, match=r"\{review\}.*not an input field.*its inputs: text"):
        parse_prompt("template", "Review: {review}", ["text"])


def test_a_task_without_declared_inputs_accepts_any_bare_placeholder() -> None:
    assert parse_prompt("template", "Review: {review}", None).placeholders == ("review",)


def test_a_template_without_a_placeholder_is_refused() -> None:
    with pytest.raises(PromptContractError, match="no \\{field\\} placeholder"):
        parse_prompt("template", "Classify the sentiment. {{not a field}}", ["text"])


def test_braces_inside_an_input_are_inserted_verbatim() -> None:
    rendered = render_messages("template", "Text: {text}\nAnswer:", {"text": "{context} {0} }{"}, ["text"])
    assert rendered == [{"role": "user", "content": "Text: {context} {0} }{\nAnswer:"}]


# ----------------------------------------------------------------------------- messages

YAML_PROMPT = """\
- role: system
  content: You label sentiment.
- role: user
  content: "Text: great food"
- role: assistant
  content: positive
- role: user
  content: "Text: {text}"
"""


def test_a_yaml_messages_prompt_renders_demos_as_turns_and_fills_the_user_template() -> None:
    assert render_messages("messages", YAML_PROMPT, {"text": "cold soup"}, ["text"]) == [
        {"role": "system", "content": "You label sentiment."},
        {"role": "user", "content": "Text: great food"},
        {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "Text: cold soup"},
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Just a sentence.", "got a string"),
        ("[]", "got an empty list"),
        ('{"role": "user", "content": "{text}"}', "got an object"),
        ('[{"role": "user", "content": "{text}"}', "neither valid JSON nor valid YAML"),
        ("- role: user\n  content: a\n  content: b", "duplicate key"),
        ('[{"role": "bot", "content": "{text}"}]', "role 'bot'"),
        ('[{"role": "user", "content": "{text}", "name": "x"}]', 'exactly "role" and "content"'),
        ('[{"role": "user"}]', 'exactly "role" and "content"'),
        ("- role: user\n  content: 42", "a number as content"),
        ("- role: user\n  content: yes", "a boolean as content.*quote it"),
        ('[{"role": "system", "content": "{text}"}]', "no user message has a \\{field\\} placeholder"),
        ('[{"role": "user", "content": "{review}"}]', "message 0 refers to \\{review\\}"),
        ('[{"role": "user", "content": "{text}"}, {"role": "assistant", "content": "{"}]', "message 1:"),
        ("- !!python/object:os.system {}", "neither valid JSON nor valid YAML"),
    ],
)
def test_a_malformed_messages_prompt_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(PromptContractError, match=reason):
        parse_prompt("messages", text, ["text"])


def test_deeply_nested_brackets_are_refused_rather_than_crashing_the_parser() -> None:
    with pytest.raises(PromptContractError, match="neither valid JSON nor valid YAML"):
        parse_prompt("messages", "[" * 50_000, ["text"])


# ----------------------------------------------------------------------------- docs/contracts.md

DOCS = Path(__file__).parents[2] / "docs" / "contracts.md"
DOC_INPUTS = {"text": "I {loved} it }{", "lang": "en"}
DOC_FILES = {
    "system": "Label the sentiment.\r\nAnswer with one word.\n",
    "template": "Text: {text}\nAnswer in {{one word}}:\n",
    "messages": [
        {"role": "system", "content": "Label {{sentiment}}."},
        {"role": "user", "content": "Text: great"},
        {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "Text: {text}"},
    ],
}


def documented_examples() -> list[tuple[str, str]]:
    """Each ```python block of docs/contracts.md with the contract its heading names."""
    examples: list[tuple[str, str]] = []
    contract = ""
    for match in re.finditer(r"^### `(\w+)`$|^```python\n(.*?)^```$", DOCS.read_text(), re.M | re.S):
        if match.group(1):
            contract = match.group(1)
        else:
            examples.append((contract, match.group(2)))
    return examples


def file_text(contract: str, path: str) -> str:
    content = DOC_FILES[contract]
    if isinstance(content, str):
        return content
    return json.dumps(content) if path.endswith(".json") else yaml_text(content)


class FakeChat:
    """What the OpenAI SDK and LiteLLM are given, with a canned answer."""

    def __init__(self) -> None:
        self.sent: list[list[dict[str, str]]] = []

    def create(self, model: str, messages: list[dict[str, str]]) -> SimpleNamespace:
        self.sent.append(messages)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content="positive"))])


@pytest.mark.parametrize(("contract", "code"), documented_examples())
def test_the_documented_application_code_sends_exactly_the_messages_kaizen_scores_with(
    contract: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = FakeChat()
    client = SimpleNamespace(chat=SimpleNamespace(completions=chat))
    monkeypatch.setitem(sys.modules, "openai", SimpleNamespace(OpenAI=lambda: client))
    monkeypatch.setitem(sys.modules, "litellm", SimpleNamespace(completion=chat.create))
    monkeypatch.chdir(tmp_path)
    [path] = re.findall(r'open\("([^"]+)"', code)
    text = file_text(contract, path)
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_bytes(text.encode())
    namespace: dict[str, object] = {"__name__": "documented_example"}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 (our own documentation)
    fields_cases = [["text"], ["text", "lang"]] if contract == "system" else [["text"]]
    for fields in fields_cases:
        namespace["INPUT_FIELDS"] = fields
        assert namespace["ask"](DOC_INPUTS) == "positive"  # type: ignore[operator]
        assert chat.sent[-1] == render_messages(contract, text, DOC_INPUTS, fields)  # type: ignore[arg-type]


def test_the_docs_show_each_contract_with_the_openai_sdk_and_litellm() -> None:
    examples = documented_examples()
    for contract in ("system", "template", "messages"):
        codes = [code for name, code in examples if name == contract]
        assert len(codes) == 2 and "from openai import OpenAI" in codes[0] and "import litellm" in codes[1]
