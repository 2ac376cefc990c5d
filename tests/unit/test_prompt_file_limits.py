"""A hostile prompt file is refused with a reason, quickly: it never hangs or crashes the publisher.

Each test here hung, exhausted memory or raised something other than PromptFileError
before the limits existed; ``pytest.mark.timeout`` turns a hang back into a failure.
"""

from __future__ import annotations

import pytest

from services.pr_publisher.prompt_files import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    PromptFileError,
    read_prompt,
    replace_prompt,
)

pytestmark = pytest.mark.timeout(60)


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: 20 lines that expand to 9**9 strings."""
    lines = ['a0: &a0 "lol"']
    for n in range(1, levels + 1):
        refs = ", ".join([f"*a{n - 1}"] * 9)
        lines.append(f"a{n}: &a{n} [{refs}]")
    lines.append('prompt: "You summarize tickets."')
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_when_read() -> None:
    with pytest.raises(PromptFileError, match="alias bomb"):
        read_prompt(billion_laughs(), "yaml", "prompt")


def test_an_alias_bomb_is_refused_when_edited() -> None:
    # Editing compares whole documents, which is where the expansion used to happen.
    with pytest.raises(PromptFileError, match="alias bomb"):
        replace_prompt(billion_laughs(), "yaml", "prompt", "New.")


def test_a_few_aliases_are_still_fine() -> None:
    content = "base: &base\n  model: gpt-4o\nsummarize:\n  settings: *base\n  system: Old.\n"

    changed = replace_prompt(content, "yaml", "summarize.system", "New.")

    assert changed == content.replace("Old.", "New.")


def test_more_aliases_than_the_budget_are_refused() -> None:
    refs = ", ".join(["*x"] * (MAX_ALIASES + 1))
    content = f"x: &x 1\nmany: [{refs}]\nprompt: hi\n"

    with pytest.raises(PromptFileError, match=f"more than {MAX_ALIASES} YAML aliases"):
        read_prompt(content, "yaml", "prompt")


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    # A self-containing list makes every later comparison recurse until the stack ends.
    with pytest.raises(PromptFileError, match="inside its own anchor"):
        replace_prompt("loop: &loop [*loop]\nprompt: hi\n", "yaml", "prompt", "New.")


def test_yaml_nested_deeper_than_the_limit_is_refused() -> None:
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)

    with pytest.raises(PromptFileError, match="depth"):
        read_prompt(f"deep: {deep}\nprompt: hi\n", "yaml", "prompt")


def test_aliases_that_stack_past_the_depth_limit_are_refused() -> None:
    lines = ["l0: &l0 [x]"] + [f"l{n}: &l{n} [*l{n - 1}]" for n in range(1, MAX_DEPTH + 2)]
    content = "\n".join(lines) + "\nprompt: hi\n"

    with pytest.raises(PromptFileError, match=f"deeper than {MAX_DEPTH} levels"):
        read_prompt(content, "yaml", "prompt")


@pytest.mark.parametrize("fmt", ["text", "json", "yaml", "python"])
def test_a_file_over_the_size_limit_is_refused_before_parsing(fmt: str) -> None:
    content = "x" * (MAX_FILE_BYTES + 1)

    with pytest.raises(PromptFileError, match=f"at most {MAX_FILE_BYTES // 1024} KiB"):
        read_prompt(content, fmt, "prompt" if fmt != "text" else None, filename="big")  # type: ignore[arg-type]


def test_the_size_limit_counts_bytes_not_characters() -> None:
    content = "é" * (MAX_FILE_BYTES // 2 + 1)  # two bytes each in UTF-8

    with pytest.raises(PromptFileError, match="KiB"):
        replace_prompt(content, "text", None, "New.")


def test_json_nested_past_pythons_stack_is_a_prompt_file_error() -> None:
    content = '{"prompt": "hi", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"

    with pytest.raises(PromptFileError, match="nested too deeply"):
        read_prompt(content, "json", "prompt")


def test_python_nested_past_the_parsers_stack_is_a_prompt_file_error() -> None:
    content = "PROMPT = 'hi'\nX = " + "-" * 100_000 + "1\n"

    with pytest.raises(PromptFileError):
        read_prompt(content, "python", "PROMPT")


def test_a_file_that_takes_too_long_to_parse_is_refused() -> None:
    content = "".join(f"k{i}: [a, b, {{c: d}}]\n" for i in range(3000)) + "prompt: hi\n"
    assert read_prompt(content, "yaml", "prompt") == "hi"

    with pytest.raises(PromptFileError, match="took too long to parse"):
        read_prompt(content, "yaml", "prompt", timeout=0.01)


def test_many_blank_lines_inside_a_block_prompt_are_edited_in_linear_time() -> None:
    # The trailing-blank-line search used to backtrack over every blank line from every start.
    content = "prompt: |\n  first\n" + "\n" * 100_000 + "  last\nother: kept\n"

    changed = replace_prompt(content, "yaml", "prompt", "New\nprompt\n")

    assert read_prompt(changed, "yaml", "prompt") == "New\nprompt\n"
    assert changed.endswith("other: kept\n")


@pytest.mark.timeout(20)
def test_a_block_header_padded_with_blanks_is_edited_in_linear_time() -> None:
    # The header-comment search used to retry the run of blanks from each of its characters
    # (about 40 s for a header this long; now a few seconds of YAML scanning).
    content = "prompt: |" + " " * 250_000 + "\n  Old.\nother: kept\n"

    changed = replace_prompt(content, "yaml", "prompt", "New.\n")

    assert read_prompt(changed, "yaml", "prompt") == "New.\n"


def test_a_comment_on_a_block_header_is_kept() -> None:
    content = "prompt: |   # the team's prompt\n  Old.\nother: kept\n"

    changed = replace_prompt(content, "yaml", "prompt", "New.\n")

    assert "|   # the team's prompt\n  New.\n" in changed
