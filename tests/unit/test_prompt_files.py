"""Prompt file editing: the new prompt reads back exactly and nothing else in the file moves."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from services.pr_publisher.prompt_files import PromptFileError, read_prompt, replace_prompt

# Pieces that break naive quoting, mixed with arbitrary unicode.
_TRICKY = [
    '"',
    "'",
    '"""',
    "'''",
    "\\",
    "\\n",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "  ",
    "#",
    ": ",
    "- ",
    "|",
    ">",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&",
    "*",
    "!",
    "%",
    "@",
    "`",
    "é",
    "日本",
    "😀",
    "\u2028",
    "\x85",
    "\ufeff",
    "\x00",
    "\x7f",
    "yes",
    "null",
    "123",
    "---",
    "...",
    "a",
    "Line",
]
prompts = st.one_of(
    st.text(),
    st.lists(st.sampled_from(_TRICKY), max_size=12).map("".join),
    st.lists(st.one_of(st.sampled_from(_TRICKY), st.text(max_size=3)), max_size=8).map("".join),
)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_only_span_changed(old: str, new: str, span: str) -> None:
    start = old.index(span)
    prefix, suffix = old[:start], old[start + len(span) :]
    assert new.startswith(prefix)
    assert new.endswith(suffix)
    assert len(new) >= len(prefix) + len(suffix)


# --- text ---------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["You are terse.\n", "You are terse.", "You are terse.\r\n", ""])
@fast
@given(prompt=prompts)
def test_text_prompt_round_trips_whatever_the_final_newline(content: str, prompt: str) -> None:
    assert read_prompt(replace_prompt(content, "text", None, prompt), "text", None) == prompt


def test_text_file_keeps_its_final_newline_convention() -> None:
    assert replace_prompt("old\n", "text", None, "new") == "new\n"
    assert replace_prompt("old", "text", None, "new") == "new"
    assert replace_prompt("old\r\n", "text", None, "new") == "new\r\n"
    assert read_prompt("Be brief.\n", "text", None) == "Be brief."


def test_a_byte_order_mark_is_kept_and_is_not_part_of_the_prompt() -> None:
    assert read_prompt("\ufeffBe brief.\n", "text", None) == "Be brief."
    assert replace_prompt("\ufeffold\n", "text", None, "new") == "\ufeffnew\n"


# --- JSON ---------------------------------------------------------------------------

JSON_DOC = """{
  "version": 2,
  "prompts": {
    "summarize": {
      "system":   "OLD",
      "temperature": 0.2,
      "note": "caf\\u00e9 \\"quoted\\""
    },
    "system": "decoy at another depth"
  },
  "items": [ {"text": "first"}, {"text": "second"} ]
}
"""


@fast
@given(prompt=prompts)
def test_json_prompt_round_trips_and_only_its_literal_changes(prompt: str) -> None:
    new = replace_prompt(JSON_DOC, "json", "prompts.summarize.system", prompt)
    assert read_prompt(new, "json", "prompts.summarize.system") == prompt
    _assert_only_span_changed(JSON_DOC, new, '"OLD"')
    twice = replace_prompt(new, "json", "prompts.summarize.system", prompt + "2")
    _assert_only_span_changed(JSON_DOC, twice, '"OLD"')


json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
json_docs = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


def _string_paths(doc: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(doc, str):
        return [prefix]
    if isinstance(doc, dict):
        items = [(str(k), v) for k, v in doc.items() if "." not in k and k]
    elif isinstance(doc, list):
        items = [(str(i), v) for i, v in enumerate(doc)]
    else:
        return []
    return [path for key, value in items for path in _string_paths(value, (*prefix, key))]


def _set(doc: Any, path: tuple[str, ...], value: str) -> None:
    for part in path[:-1]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    doc[int(path[-1]) if isinstance(doc, list) else path[-1]] = value


@fast
@given(doc=json_docs, indent=st.sampled_from([None, 0, 2, 4, "\t"]), data=st.data())
def test_json_replace_changes_exactly_one_value_in_any_document(
    doc: Any, indent: Any, data: st.DataObject
) -> None:
    paths = [p for p in _string_paths(doc) if p]
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    prompt = data.draw(prompts)
    content = json.dumps(doc, indent=indent, ensure_ascii=data.draw(st.booleans()))
    new = replace_prompt(content, "json", ".".join(path), prompt)
    _set(doc, path, prompt)
    assert json.loads(new) == doc


def test_json_keeps_spacing_order_and_escapes_elsewhere() -> None:
    new = replace_prompt(JSON_DOC, "json", "items.1.text", "Zweite")
    assert new == JSON_DOC.replace('"second"', '"Zweite"')


def test_json_errors_name_the_path_and_the_keys_there() -> None:
    with pytest.raises(
        PromptFileError,
        match=r"key path prompts\.x not found in config/prompts\.json; "
        r"available keys at prompts: summarize, system",
    ):
        replace_prompt(JSON_DOC, "json", "prompts.x", "new", filename="config/prompts.json")
    with pytest.raises(PromptFileError, match=r"summarize\.temperature .* is a number, not a string"):
        read_prompt(JSON_DOC, "json", "prompts.summarize.temperature")
    with pytest.raises(PromptFileError, match=r"items is a list of 2 items \(index 0\.\.1\)"):
        read_prompt(JSON_DOC, "json", "items.7.text")
    with pytest.raises(PromptFileError, match=r"not valid JSON \(line 1, column 2"):
        read_prompt("{oops}", "json", "a")
    with pytest.raises(PromptFileError, match="need a key path"):
        read_prompt(JSON_DOC, "json", None)


# --- YAML ---------------------------------------------------------------------------

# (document, locator, the exact text of the old value) — one per quoting style and position.
YAML_CASES = [
    (
        "# Prompts for the ticket bot\nprompts:\n  summarize:\n    system: OLD  # owned by team A\n"
        "    model: gpt-4o\n",
        "prompts.summarize.system",
        "OLD",
    ),
    (
        'prompts:\n  summarize:\n    system: "OLD \\"q\\""\n    other: 1\n',
        "prompts.summarize.system",
        '"OLD \\"q\\""',
    ),
    ("prompts:\n  system: 'it''s OLD'\n  after: x\n", "prompts.system", "'it''s OLD'"),
    (
        "prompts:\n  system: |\n    line one\n    line two\n\n  # trailing comment\n  after: true\n",
        "prompts.system",
        "|\n    line one\n    line two",
    ),
    ("prompts:\n  system: >-\n    folded\n    text\nnext: 1\n", "prompts.system", ">-\n    folded\n    text"),
    ("items:\n  - name: a\n    text: OLD\n  - name: b\n    text: keep\n", "items.0.text", "OLD"),
    ("list:\n- OLD\n- keep\n", "list.0", "OLD"),
    ("flow: {system: OLD, other: keep}\n", "flow.system", "OLD"),
    (
        "prompts:\n  system:\n    OLD plain\n    continued\nz: 1\n",
        "prompts.system",
        "OLD plain\n    continued",
    ),
    ("prompts:\n  system: !!str OLD\n", "prompts.system", "OLD"),
    ("prompts:\r\n  system: OLD\r\n  other: keep\r\n", "prompts.system", "OLD"),
    ("prompts:\n  system: OLD", "prompts.system", "OLD"),
    ("1: {2: OLD}\n", "1.2", "OLD"),
    (
        "p:\n  system: |-  # edited by Kaizen\n    OLD\n  other: x\n",
        "p.system",
        "|-  # edited by Kaizen\n    OLD",
    ),
]


def _load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@pytest.mark.parametrize(
    ("content", "locator", "old"), YAML_CASES, ids=[c[1] + str(i) for i, c in enumerate(YAML_CASES)]
)
@fast
@given(prompt=prompts)
def test_yaml_prompt_round_trips_and_only_its_scalar_changes(
    content: str, locator: str, old: str, prompt: str
) -> None:
    new = replace_prompt(content, "yaml", locator, prompt)
    assert read_prompt(new, "yaml", locator) == prompt
    _assert_only_span_changed(content, new, old)
    twice = replace_prompt(new, "yaml", locator, "Second " + prompt)
    assert read_prompt(twice, "yaml", locator) == "Second " + prompt
    _assert_only_span_changed(content, twice, old)


def test_yaml_multi_line_prompt_becomes_a_literal_block_and_comments_stay() -> None:
    content = YAML_CASES[0][0]
    new = replace_prompt(content, "yaml", "prompts.summarize.system", "Summarize the ticket.\nBe brief.\n")
    assert new == (
        "# Prompts for the ticket bot\nprompts:\n  summarize:\n    system: OLD  # owned by team A\n"
        "    model: gpt-4o\n"
    ).replace("OLD  # owned", '"Summarize the ticket.\\nBe brief.\\n"  # owned')
    # With nothing after the value on its line, a literal block is possible.
    content = "prompts:\n  summarize:\n    system: OLD\n    model: gpt-4o  # pinned\n"
    new = replace_prompt(content, "yaml", "prompts.summarize.system", "Summarize the ticket.\nBe brief.\n")
    assert new == (
        "prompts:\n  summarize:\n    system: |\n      Summarize the ticket.\n      Be brief.\n"
        "    model: gpt-4o  # pinned\n"
    )
    new = replace_prompt(content, "yaml", "prompts.summarize.system", "One\nTwo")
    assert "    system: |-\n      One\n      Two\n    model" in new


def test_yaml_keeps_a_comment_on_a_block_header() -> None:
    content = YAML_CASES[-1][0]
    assert replace_prompt(content, "yaml", "p.system", "a\nb") == content.replace("OLD", "a\n    b")
    # A line separator cannot live in a block scalar, so double quotes take over, comment and all.
    assert replace_prompt(content, "yaml", "p.system", "x\u2028y") == content.replace(
        "|-  # edited by Kaizen\n    OLD", '"x\\u2028y"  # edited by Kaizen'
    )


def test_yaml_keeps_the_original_quoting_style_when_it_can() -> None:
    assert replace_prompt(YAML_CASES[2][0], "yaml", "prompts.system", "don't") == YAML_CASES[2][0].replace(
        "'it''s OLD'", "'don''t'"
    )
    assert "system: Plain words here  # owned" in replace_prompt(
        YAML_CASES[0][0], "yaml", "prompts.summarize.system", "Plain words here"
    )
    # Words YAML 1.1 readers take for booleans are quoted even where plain style was used.
    assert 'system: "yes"' in replace_prompt(YAML_CASES[0][0], "yaml", "prompts.summarize.system", "yes")


def test_yaml_output_reads_the_same_with_pyyaml() -> None:
    yaml = pytest.importorskip("yaml")
    for content, locator, _ in YAML_CASES:
        for prompt in ["yes", "a: b", "x\n  y\n", "😀 \u2028 \x85 end", "  lead\ntrail  \n\n"]:
            new = replace_prompt(content, "yaml", locator, prompt)
            node = yaml.safe_load(new)
            for part in locator.split("."):
                node = node[int(part)] if isinstance(node, list) or part.isdigit() else node[part]
            assert node == prompt


def test_yaml_errors_are_actionable() -> None:
    with pytest.raises(PromptFileError, match=r"available keys at prompts\.summarize: system, model"):
        read_prompt(YAML_CASES[0][0], "yaml", "prompts.summarize.user", filename="prompts.yaml")
    with pytest.raises(PromptFileError, match="anchor or alias"):
        replace_prompt("base: &b OLD\nuse: *b\n", "yaml", "use", "x")
    with pytest.raises(PromptFileError, match="merge key"):
        replace_prompt("base: &b {system: OLD}\nuse:\n  <<: *b\n", "yaml", "use.system", "x")
    with pytest.raises(PromptFileError, match=r"prompts\.yaml is not valid YAML"):
        read_prompt("a: [1,\n", "yaml", "a", filename="prompts.yaml")
    with pytest.raises(PromptFileError, match="is a boolean, not a string"):
        read_prompt("flag: true\n", "yaml", "flag")


def test_yaml_document_values_other_than_the_prompt_are_unchanged() -> None:
    content = YAML_CASES[3][0]
    new = replace_prompt(content, "yaml", "prompts.system", "x\n\n\n")
    assert _load_yaml(new) == {"prompts": {"system": "x\n\n\n", "after": True}}


# --- Python -------------------------------------------------------------------------

PY_CASES = [
    ('"""Prompts."""\n\nSYSTEM_PROMPT = "OLD"  # owned by team A\nOTHER = 1\n', "SYSTEM_PROMPT", '"OLD"'),
    ("from typing import Final\n\nSYSTEM_PROMPT: Final[str] = 'OLD'\n", "SYSTEM_PROMPT", "'OLD'"),
    (
        'SYSTEM_PROMPT = """\\\nOLD\nlines\n"""\nprint(SYSTEM_PROMPT)\n',
        "SYSTEM_PROMPT",
        '"""\\\nOLD\nlines\n"""',
    ),
    ("PROMPT = (\n    'OLD '\n    \"two\"\n)\n", "PROMPT", "'OLD '\n    \"two\""),
    ('CAFÉ = "é"; PROMPT = r"OLD\\d"; AFTER = "ü"\n', "PROMPT", 'r"OLD\\d"'),
    ('PROMPT = "first"\nPROMPT = u"OLD"\n', "PROMPT", 'u"OLD"'),
    ("X = 1\r\nPROMPT = '''OLD'''\r\nY = 2\r\n", "PROMPT", "'''OLD'''"),
]


@pytest.mark.parametrize(("content", "locator", "old"), PY_CASES, ids=[str(i) for i in range(len(PY_CASES))])
@fast
@given(prompt=prompts)
def test_python_prompt_round_trips_and_only_its_literal_changes(
    content: str, locator: str, old: str, prompt: str
) -> None:
    new = replace_prompt(content, "python", locator, prompt)
    ast.parse(new)
    assert read_prompt(new, "python", locator) == prompt
    _assert_only_span_changed(content, new, old)
    literal = new[content.index(old) : len(new) - (len(content) - content.index(old) - len(old))]
    assert ast.literal_eval(literal) == prompt


def test_python_multi_line_prompt_is_written_triple_quoted() -> None:
    new = replace_prompt(PY_CASES[0][0], "python", "SYSTEM_PROMPT", 'Say "hi".\nThen stop.\n')
    assert (
        new
        == '"""Prompts."""\n\nSYSTEM_PROMPT = """Say "hi".\nThen stop.\n"""  # owned by team A\nOTHER = 1\n'
    )
    new = replace_prompt(PY_CASES[0][0], "python", "SYSTEM_PROMPT", 'ends with """')
    assert 'SYSTEM_PROMPT = "ends with \\"\\"\\""  #' in new


def test_python_single_line_keeps_the_quote_character() -> None:
    new = replace_prompt(PY_CASES[1][0], "python", "SYSTEM_PROMPT", "Be brief")
    assert new == "from typing import Final\n\nSYSTEM_PROMPT: Final[str] = 'Be brief'\n"


def test_python_errors_are_actionable() -> None:
    source = 'import os\nNAME = f"x{os.sep}"\nCALL = os.getenv("P")\n'
    with pytest.raises(PromptFileError, match=r"NAME in app/prompts\.py is an f-string"):
        replace_prompt(source, "python", "NAME", "x", filename="app/prompts.py")
    with pytest.raises(
        PromptFileError, match=r"CALL .* is not a plain string literal \(it is `os.getenv\('P'\)`\)"
    ):
        read_prompt(source, "python", "CALL")
    with pytest.raises(
        PromptFileError, match=r"no module-level assignment to SYSTEM_PROMPT .*names: CALL, NAME"
    ):
        read_prompt(source, "python", "SYSTEM_PROMPT")
    with pytest.raises(PromptFileError, match="not valid Python"):
        read_prompt("X = (", "python", "X")
    with pytest.raises(PromptFileError, match="need a variable name"):
        read_prompt(source, "python", "a.b")


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(PromptFileError, match="unknown prompt format 'toml'"):
        read_prompt("", "toml", None)  # type: ignore[arg-type]
