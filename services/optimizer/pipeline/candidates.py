"""Prompt candidates under a contract: grounded ones, vetted proposals, rendering and the choice (pure).

A candidate is a *body* — a valid prompt file under the task's contract, without demos —
plus the demos to show. :func:`render_file` turns the pair into the exact text written to
the repository; :func:`shared.prompt_contract.render_messages` turns that text into the
messages the application sends. The optimizer's DSPy program and every re-score go
through these two functions, so a score inside DSPy and the export's score are the score
of the same messages.

Bodies come from three places: the prompt the application runs today (the baseline),
*grounded* bodies built from what the task says about itself (its name, description,
input fields and the label set of its gold outputs), and the teacher's proposals, each
vetted first: a weak teacher proposes off-task or degenerate text, and such a proposal is
dropped and counted instead of competing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.events.tasks import PromptContract
from shared.prompt_contract import PromptContractError, fill, parse_prompt
from shared.prompt_contract import placeholders as placeholders_of

FORMAT_RULE = "Reply with the output only: no preamble, no explanation, no quotes."
MAX_PROPOSAL_CHARS = 1200
MIN_PROPOSAL_CHARS = 12
Layout = Literal["instruction_first", "input_first", "quoted_input", "no_cue"]
#: Where the instruction stands and how the input is shown. A small model's answer moves
#: with choices a person would call cosmetic (quotes around the input: +5 points on Yelp
#: held-out sentences; an ``Answer:`` cue: ±3), so each is a candidate to measure.
LAYOUTS: tuple[Layout, ...] = ("instruction_first", "input_first", "quoted_input", "no_cue")


@dataclass(frozen=True)
class TaskFacts:
    """What the task says about itself: the material grounded candidates are built from."""

    name: str
    description: str
    input_fields: tuple[str, ...]
    labels: tuple[str, ...]  # the gold outputs' label set, most frequent first; () for free text

    @property
    def vocabulary(self) -> set[str]:
        """Words a proposal about this task is expected to use at least one of."""
        text = " ".join([self.name, self.description, *self.input_fields, *self.labels])
        words = set(re.findall(r"[a-z][a-z0-9]{2,}", text.lower().replace("_", " ")))
        return words | {"classify", "label", "answer", "output", "input", "category", "sentiment"}


@dataclass(frozen=True)
class Candidate:
    """One rendered prompt: where it came from, its body and its demos."""

    name: str
    body: str
    demos: tuple[Mapping[str, str], ...] = ()


# ----------------------------------------------------------------------------- rendering


def escape(text: str) -> str:
    """Literal text inside a ``str.format`` template."""
    return text.replace("{", "{{").replace("}", "}}")


def field_label(field: str) -> str:
    return field.replace("_", " ").strip().capitalize() or field


def input_block(fields: Sequence[str], quoted: bool = False) -> str:
    """``Text: {text}`` lines (``Text: "{text}"`` when ``quoted``), one per input field."""
    quote = '"' if quoted else ""
    return "\n".join(f"{field_label(f)}: {quote}{{{f}}}{quote}" for f in fields)


def wrap_instruction(
    contract: PromptContract, instruction: str, fields: Sequence[str], layout: Layout = "instruction_first"
) -> str:
    """A body under ``contract`` that carries ``instruction`` (plain text, braces literal)."""
    instruction = instruction.strip()
    if contract == "system":
        return instruction
    literal = escape(instruction)
    shown = input_block(fields, quoted=layout == "quoted_input")
    if layout == "input_first":
        template = f"{shown}\n\n{literal}"
    elif layout == "no_cue":
        template = f"{literal}\n\n{shown}"
    else:
        template = f"{literal}\n\n{shown}\nAnswer:"
    if contract == "template":
        return template
    messages = [{"role": "system", "content": literal}, {"role": "user", "content": shown}]
    if layout == "input_first":
        messages = [{"role": "user", "content": template}]
    return json.dumps(messages, indent=2, ensure_ascii=False)


def render_file(
    contract: PromptContract, body: str, demos: Sequence[Mapping[str, str]], fields: Sequence[str]
) -> str:
    """The prompt file's text: ``body`` with ``demos`` shown the way the contract shows them.

    - ``system``: an ``Examples:`` section after the instructions.
    - ``template``: an ``Examples:`` section of ``Field: value`` / ``Answer: output`` blocks
      before the template (braces escaped, so the application's ``str.format`` gives the
      demo text back unchanged).
    - ``messages``: each demo is a user turn and an assistant turn before the last user message.

    Without demos the body is returned unchanged: the baseline is scored byte for byte as
    the application runs it.
    """
    if not demos:
        return body  # byte for byte what the application runs, or what a candidate body says
    if contract == "system":
        lines = ["Examples:"]
        for demo in demos:
            lines += ["", _demo_input(demo, fields, bare_prefix="Input: "), f"Output: {demo['output']}"]
        return body.rstrip() + "\n\n" + "\n".join(lines) + "\n"
    if contract == "template":
        shown = [escape(f"{_demo_input(d, fields)}\nAnswer: {d['output']}") for d in demos]
        return "Examples:\n\n" + "\n\n".join(shown) + "\n\n" + body
    messages = json.loads(body)
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    turns = []
    for demo in demos:
        turns.append({"role": "user", "content": escape(fill(_last_user(body), demo))})
        turns.append({"role": "assistant", "content": escape(demo["output"])})
    return json.dumps(messages[:last] + turns + messages[last:], indent=2, ensure_ascii=False)


def _demo_input(demo: Mapping[str, str], fields: Sequence[str], bare_prefix: str | None = None) -> str:
    if bare_prefix is not None and len(fields) == 1:
        return f"{bare_prefix}{demo[fields[0]]}"
    if bare_prefix is not None:
        return "\n".join(f"{f}: {demo[f]}" for f in fields)
    return "\n".join(f"{field_label(f)}: {demo[f]}" for f in fields)


def _last_user(body: str) -> str:
    messages = json.loads(body)
    return str(next(m["content"] for m in reversed(messages) if m["role"] == "user"))


def strip_rendered_demos(contract: PromptContract, text: str, fields: Sequence[str]) -> str:
    """``text`` without the demos :func:`render_file` shows, so the next job learns them afresh.

    The optimizer starts from this, so demos do not pile up from one job to the next (the
    baseline is still scored exactly as the application runs it).

    - ``system``: the ``Examples:`` section after the instructions goes.
    - ``template``: the leading ``Examples:`` blocks go, but only when rendering the rest
      with those blocks gives ``text`` back byte for byte (a template the user wrote with
      a section of that name in another shape is left alone).
    - ``messages``: the user/assistant pairs right before the last user message go, when
      their user turns are filled in (no placeholder) and what is left is a valid body.

    Anything else, or a result that would not be a valid body, gives ``text`` unchanged.
    """
    if contract == "system":
        return text.split("\n\nExamples:\n", 1)[0].rstrip() or text
    if contract == "template":
        return _strip_template_demos(text, fields)
    return _strip_message_demos(text, fields)


def _strip_template_demos(text: str, fields: Sequence[str]) -> str:
    head = "Examples:\n\n"
    if not text.startswith(head):
        return text
    chunks = text[len(head) :].split("\n\n")
    demos: list[dict[str, str]] = []
    for i, chunk in enumerate(chunks[:-1]):
        demo = _template_demo(chunk, fields)
        if demo is None:
            return text
        demos.append(demo)
        body = "\n\n".join(chunks[i + 1 :])
        if is_valid_body("template", body, fields) and render_file("template", body, demos, fields) == text:
            return body
    return text


def _template_demo(chunk: str, fields: Sequence[str]) -> dict[str, str] | None:
    """The demo one ``Field: value`` / ``Answer: output`` block shows, or None for another shape."""
    lines = chunk.replace("{{", "{").replace("}}", "}").split("\n")
    labels = [*(f"{field_label(f)}: " for f in fields), "Answer: "]
    if len(lines) != len(labels) or not all(
        line.startswith(lb) for line, lb in zip(lines, labels, strict=True)
    ):
        return None
    values = [line[len(lb) :] for line, lb in zip(lines, labels, strict=True)]
    return {**dict(zip(fields, values[:-1], strict=True)), "output": values[-1]}


def _strip_message_demos(text: str, fields: Sequence[str]) -> str:
    try:
        messages = parse_prompt("messages", text, fields).messages
    except PromptContractError:
        return text
    last = max(i for i, m in enumerate(messages) if m.role == "user")
    start = last
    while (
        start >= 2
        and messages[start - 1].role == "assistant"
        and messages[start - 2].role == "user"
        and not placeholders_of(messages[start - 2].content)
    ):
        start -= 2
    if start == last:
        return text
    kept = [{"role": m.role, "content": m.content} for m in (*messages[:start], *messages[last:])]
    body = json.dumps(kept, indent=2, ensure_ascii=False)
    return body if is_valid_body("messages", body, fields) else text


def candidate_text(contract: PromptContract, candidate: Candidate, fields: Sequence[str]) -> str:
    return render_file(contract, candidate.body, candidate.demos, fields)


def is_valid_body(contract: PromptContract, body: str, fields: Sequence[str]) -> bool:
    try:
        parse_prompt(contract, body, fields)
    except PromptContractError:
        return False
    return True


# ----------------------------------------------------------------------------- grounded bodies


def output_rule(labels: Sequence[str]) -> str:
    """How to answer: one of the labels when the outputs form a label set, else the output alone."""
    if not labels:
        return FORMAT_RULE
    if len(labels) == 2:
        shape = "one word" if all(" " not in label for label in labels) else "exactly one of these"
        return f"Answer with {shape}: {labels[0]} or {labels[1]}."
    return f"Answer with exactly one of: {', '.join(labels)}."


def grounded_instructions(facts: TaskFacts, layout: Layout = "instruction_first") -> list[tuple[str, str]]:
    """(name, instruction) pairs written from the task's own description, fields and labels.

    Phrased for where the instruction stands: before the input it speaks of "the
    following text", after it of "this text". For two labels the question is asked in
    both orders, because a small model tends to echo the first label it is offered.
    """
    subject = field_label(facts.input_fields[0]).lower() if len(facts.input_fields) == 1 else "input"
    topic = facts.name.replace("_", " ").replace("-", " ").strip() or "task"
    this = f"this {subject}" if layout == "input_first" else f"the following {subject}"
    found: list[tuple[str, str]] = []
    if facts.description.strip():
        found.append(("grounded:description", f"{facts.description.strip()} {output_rule(facts.labels)}"))
    if len(facts.labels) == 2:
        for a, b in (facts.labels, facts.labels[::-1]):
            found.append((f"grounded:question:{a}", f"Is {this} {a} or {b}? Answer with one word."))
        found.append(("grounded:classify", f"Classify {this} as {facts.labels[0]} or {facts.labels[1]}."))
        # "the text", not "the following text": on the embedded model the shorter wording
        # scored 0.79 on Yelp held-out sentences against 0.56 (bench/README.md).
        label = f"Read the {subject} and give its label. {output_rule(facts.labels)}"
        found.append(("grounded:label", label))
    elif facts.labels:
        found.append(("grounded:classify", f"Classify {this} as one of: {', '.join(facts.labels)}."))
        found.append(("grounded:label", f"Read {this} and give its label. {output_rule(facts.labels)}"))
    else:
        given = ", ".join(f.replace("_", " ") for f in facts.input_fields)
        found.append(
            ("grounded:task", f"{topic.capitalize()}: given the {given}, write the output. {FORMAT_RULE}")
        )
    return found


def grounded_bodies(contract: PromptContract, facts: TaskFacts) -> list[Candidate]:
    """Every grounded instruction in every layout the contract has (one for ``system``)."""
    layouts: Sequence[Layout] = ("instruction_first",) if contract == "system" else LAYOUTS
    out: list[Candidate] = []
    for layout in layouts:
        suffix = "" if contract == "system" else f"/{layout}"
        for name, instruction in grounded_instructions(facts, layout):
            body = wrap_instruction(contract, instruction, facts.input_fields, layout)
            out.append(Candidate(f"{name}{suffix}", body))
    return out


# ----------------------------------------------------------------------------- vetting proposals


def vet_proposal(text: str, facts: TaskFacts) -> str | None:
    """Why a teacher's proposed instruction is unusable, or None when it may compete.

    Dropped: too short or too long, markup debris, degenerate repetition, and text that
    uses none of the task's words (off-task: a story writer for sentiment labels).
    """
    cleaned = text.strip()
    if len(cleaned) < MIN_PROPOSAL_CHARS:
        return "too short"
    if len(cleaned) > MAX_PROPOSAL_CHARS:
        return "too long"
    if re.search(r"\[\s*#|#\w+#|\[\[ ##|```", cleaned):
        return "markup"
    tokens = re.findall(r"[a-z0-9']+", cleaned.lower())
    if len(tokens) >= 12 and len(set(tokens)) / len(tokens) < 0.35:
        return "repetitive"
    if re.search(r"(.{6,}?)\1{3,}", cleaned):
        return "repetitive"
    if not set(re.findall(r"[a-z][a-z0-9]{2,}", cleaned.lower())) & facts.vocabulary:
        return "off-task"
    return None


# ----------------------------------------------------------------------------- the choice


@dataclass(frozen=True)
class Scored:
    """A candidate's text, its score on the validation set and, for a finalist, on more rows."""

    candidate: Candidate
    text: str
    score: float
    #: A finalist's score over validation plus the training rows it does not show as demos.
    selection: float | None = None
    selection_rows: int = 0

    @property
    def chosen_by(self) -> float:
        return self.score if self.selection is None else self.selection


def finalists(scored: Sequence[Scored], n: int, baseline_name: str = "baseline") -> list[Scored]:
    """The ``n`` best so far (ties: the earlier), and the baseline, in their order.

    Validation is small (16 rows for 100 examples), so it only screens; the finalists are
    then scored on more rows, and ranked by all of them, before one is chosen.
    """
    ranked = sorted(range(len(scored)), key=lambda i: (-round(scored[i].chosen_by, 9), i))[:n]
    keep = set(ranked) | {i for i, s in enumerate(scored) if s.candidate.name == baseline_name}
    return [s for i, s in enumerate(scored) if i in keep]


def shown_as_demo(candidate: Candidate, inputs: Mapping[str, str], fields: Sequence[str]) -> bool:
    """Whether ``candidate`` shows this example's inputs as one of its demos."""
    return any(all(demo.get(f) == inputs.get(f) for f in fields) for demo in candidate.demos)


def choose(scored: Sequence[Scored], baseline_name: str = "baseline") -> Scored:
    """The best candidate (finalists by their wider score); a tie keeps the baseline, then the shorter text.

    Keeping the baseline on a tie means a job never proposes a change it cannot show is better.
    """
    if not scored:
        raise ValueError("no candidate was scored")
    return max(scored, key=lambda s: (round(s.chosen_by, 9), s.candidate.name == baseline_name, -len(s.text)))
