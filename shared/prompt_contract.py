"""The prompt contract: how an application sends its prompt file to the model.

A task's ``prompt_contract`` is one of three documented ways of calling the model
(``docs/contracts.md`` shows the application's side, with the OpenAI SDK and LiteLLM):

- ``system``: the file is the system message; the inputs form the user message, a lone
  field as its bare value, several as ``name: value`` lines.
- ``template``: the file is a user-message template in Python ``str.format`` syntax,
  ``{field}`` placeholders and ``{{``/``}}`` for literal braces.
- ``messages``: the file is a JSON or YAML list of ``{role, content}`` chat messages whose
  contents follow the template rules; demos become user/assistant turns.

:func:`parse_prompt` validates a file's text under a contract (the API refuses what it
refuses) and :func:`render_messages` is *the* definition of the messages the application
sends for one input: every score the optimizer reports calls the model through it, so the
score in a pull request is the score the application will see. Pure: no I/O, no DSPy.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from shared.events.tasks import PromptContract

# Well under the broker's 1 MB event limit, and small enough that parsing a hostile YAML
# file stays cheap; a real prompt is a few KiB.
MAX_PROMPT_CHARS = 200_000
ROLES = ("system", "user", "assistant")


class PromptContractError(ValueError):
    """The text is not a valid prompt under the contract; the message says why, for a 422."""


@dataclass(frozen=True)
class PromptMessage:
    """One chat message of a prompt, its content still a template (for ``template``/``messages``)."""

    role: str
    content: str


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt file's text, validated under its contract.

    ``messages`` are the file's own messages before any input is filled in: the lone system
    message for ``system``, the lone user template for ``template``, the list for ``messages``.
    ``placeholders`` are the input fields the text refers to, in order of first appearance.
    """

    contract: PromptContract
    text: str
    messages: tuple[PromptMessage, ...]
    placeholders: tuple[str, ...]


def placeholders(text: str) -> list[str]:
    """The ``{field}`` names in a ``str.format`` template, in order of first appearance.

    Only bare names are allowed. Attribute and index access (``{x.y}``, ``{x[0]}``) reach
    into objects, and conversions and format specs (``{x!r}``, ``{x:>10}``) change what
    the application sends in ways a reviewer does not expect; positional fields (``{}``,
    ``{0}``) have no input to fill them. Raises :class:`PromptContractError`.
    """
    names: list[str] = []
    for _literal, field, spec, conversion in _format_pieces(text):
        if field is None:
            continue
        _check_placeholder(field, spec, conversion)
        if field not in names:
            names.append(field)
    return names


def parse_prompt(
    contract: PromptContract, text: str, input_fields: Sequence[str] | None = None
) -> ParsedPrompt:
    """Validate a prompt file's text under ``contract``; raise :class:`PromptContractError` if invalid.

    ``input_fields`` are the task's declared inputs; when given, every placeholder must name
    one of them. A task without a declared schema (``None``) accepts any bare name.
    """
    return _parse(contract, text, None if input_fields is None else tuple(input_fields))


def render_messages(
    contract: PromptContract, text: str, inputs: Mapping[str, Any], input_fields: Sequence[str]
) -> list[dict[str, str]]:
    """The chat messages the application sends for one input, under ``contract``.

    Input values are inserted verbatim and never parsed again, so braces inside an input
    are safe. Inputs the prompt does not mention are ignored, as ``str.format`` ignores them.
    """
    parsed = _parse(contract, text, tuple(input_fields))
    if contract == "system":
        return [
            {"role": "system", "content": text},
            {"role": "user", "content": user_message(inputs, input_fields)},
        ]
    return [{"role": m.role, "content": fill(m.content, inputs)} for m in parsed.messages]


def user_message(inputs: Mapping[str, Any], input_fields: Sequence[str]) -> str:
    """The ``system`` contract's user message: a lone field's bare value, else ``name: value`` lines."""
    if not input_fields:
        raise PromptContractError("the task declares no input fields to send as the user message")
    values = [_input(inputs, name) for name in input_fields]
    if len(values) == 1:
        return values[0]
    return "\n".join(f"{name}: {value}" for name, value in zip(input_fields, values, strict=True))


def fill(template: str, inputs: Mapping[str, Any]) -> str:
    """``template.format(**inputs)`` for a validated template, built piece by piece.

    Equal to ``str.format`` on every template :func:`placeholders` accepts (a property test
    checks it), but a missing input is a :class:`PromptContractError`, not a ``KeyError``.
    """
    parts: list[str] = []
    for literal, field, spec, conversion in _format_pieces(template):
        parts.append(literal)
        if field is not None:
            _check_placeholder(field, spec, conversion)
            parts.append(_input(inputs, field))
    return "".join(parts)


# ----------------------------------------------------------------------------- parsing


# Parsing a ``messages`` file is the expensive part of rendering, and the optimizer renders
# the same prompt for every example; the result is immutable, so caching it is safe.
@functools.lru_cache(maxsize=64)
def _parse(contract: PromptContract, text: str, input_fields: tuple[str, ...] | None) -> ParsedPrompt:
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptContractError(f"the prompt is {len(text)} characters long; at most {MAX_PROMPT_CHARS}")
    if not text.strip():
        raise PromptContractError("the prompt is empty")
    if contract == "system":
        return ParsedPrompt(contract, text, (PromptMessage("system", text),), ())
    if contract == "template":
        names = _template_names(text, input_fields, where="the template")
        if not names:
            raise PromptContractError(
                "the template has no {field} placeholder, so every input would get the same message; "
                "add one such as {text}"
            )
        return ParsedPrompt(contract, text, (PromptMessage("user", text),), tuple(names))
    if contract == "messages":
        return _parse_messages(text, input_fields)
    raise PromptContractError(f"unknown prompt contract {contract!r}; expected system, template or messages")


def _parse_messages(text: str, input_fields: tuple[str, ...] | None) -> ParsedPrompt:
    items = _load_list(text)
    messages = tuple(_message(index, item) for index, item in enumerate(items))
    names: list[str] = []
    user_has_placeholder = False
    for index, message in enumerate(messages):
        found = _template_names(message.content, input_fields, where=f"message {index}")
        user_has_placeholder |= message.role == "user" and bool(found)
        names.extend(name for name in found if name not in names)
    if not user_has_placeholder:
        raise PromptContractError(
            "no user message has a {field} placeholder, so every input would get the same messages; "
            "put one such as {text} in a user message"
        )
    return ParsedPrompt("messages", text, messages, tuple(names))


def _load_list(text: str) -> list[Any]:
    """A JSON list, else a YAML list (safe loader: plain data, no Python objects)."""
    try:
        loaded: Any = json.loads(text)
    except (ValueError, RecursionError):
        try:
            # PyYAML's safe loader, exactly what most applications read their prompt file with
            # (YAML 1.1: `yes` is a boolean, `0777` a number, `0E0` a string); plain data only.
            loaded = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            why = f"the messages are neither valid JSON nor valid YAML: {_why(exc)}"
            raise PromptContractError(why) from exc
    if not isinstance(loaded, list) or not loaded:
        raise PromptContractError(
            'a messages prompt is a non-empty JSON or YAML list of {"role": …, "content": …} messages; '
            f"got {_kind(loaded)}"
        )
    return loaded


class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type information
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last one
    silently; a reviewer reading the file would see two contents and not know which is sent)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({str(k) for k in keys if keys.count(k) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {', '.join(repeated)}", node.start_mark
            )
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _message(index: int, item: Any) -> PromptMessage:
    if not isinstance(item, dict) or set(item) != {"role", "content"}:
        raise PromptContractError(f'message {index} must be an object with exactly "role" and "content"')
    role, content = item["role"], item["content"]
    if role not in ROLES:
        raise PromptContractError(f"message {index} has role {role!r}; expected one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise PromptContractError(
            f"message {index} has {_kind(content)} as content; it must be a string (quote it in YAML)"
        )
    return PromptMessage(role, content)


def _template_names(text: str, input_fields: tuple[str, ...] | None, *, where: str) -> list[str]:
    try:
        names = placeholders(text)
    except PromptContractError as exc:
        raise PromptContractError(f"{where}: {exc}") from exc
    if input_fields is not None:
        unknown = [name for name in names if name not in input_fields]
        if unknown:
            known = ", ".join(input_fields) or "none"
            raise PromptContractError(
                f"{where} refers to {', '.join('{' + n + '}' for n in unknown)}, which "
                f"{'is not an input field' if len(unknown) == 1 else 'are not input fields'} "
                f"of the task (its inputs: {known}); write literal braces as {{{{ and }}}}"
            )
    return names


def _format_pieces(text: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(text))
    except ValueError as exc:
        # "Single '}' encountered in format string", "unmatched '{' in format spec", …
        raise PromptContractError(f"{exc}; write literal braces as {{{{ and }}}}") from exc


def _check_placeholder(field: str, spec: str | None, conversion: str | None) -> None:
    if not field.isidentifier():
        raise PromptContractError(
            f"placeholder {{{field}}} must be a bare input field name such as {{text}} "
            "(no positional, attribute or index access)"
        )
    if conversion is not None or spec:
        raise PromptContractError(f"placeholder {{{field}}} must have no conversion (!r) or format spec (:…)")


def _input(inputs: Mapping[str, Any], name: str) -> str:
    if name not in inputs:
        raise PromptContractError(f"the input has no field {name!r}")
    return str(inputs[name])


def _why(exc: BaseException) -> str:
    """A YAML error's problem and line, without the parser's multi-line context dump."""
    problem = getattr(exc, "problem", None) or str(exc).strip().split("\n")[0] or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1})" if mark is not None else str(problem)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool | int | float):
        return "a number" if not isinstance(value, bool) else "a boolean"
    return f"a value of type {type(value).__name__}"
