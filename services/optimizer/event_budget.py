"""Keeping a job's events under the broker's record limit (DESIGN §4 rule 8).

``PromptVersionCreated`` carries the prompt, its demos and DSPy's state; ``JobCompiled``
carries before/after examples and the job's metadata. Before they are appended:

- ``dspy_state`` over :data:`DSPY_STATE_MAX_BYTES` is replaced by a note
  (``dspy_state_omitted``, its sha256 and size): the prompt text is what ships;
- demos and examples that do not fit are truncated, and ``job_metadata.notes`` says so;
- the prompt text itself is never cut: over :data:`MAX_PROMPT_CHARS` (the API's cap on a
  registered prompt) or over the record limit, the job fails with :class:`ResultTooLarge`.

Where the sizes depend on the task's input, :func:`input_problem` refuses the job before
any LLM call: a current prompt over the cap, or examples whose demos could make the
export too large.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from services.optimizer.spec import Example, JobSpec
from shared.events import jobs as jb
from shared.events.prompts import PromptVersionCreated
from shared.kafka.producer import MAX_EVENT_BYTES
from shared.prompt_contract import MAX_PROMPT_CHARS

#: Room kept for the envelope around ``data`` (ids, type, source, times).
ENVELOPE_ROOM = 8_192
EVENT_BUDGET = MAX_EVENT_BYTES - ENVELOPE_ROOM
#: DSPy's state above this is not worth a record of its own: the prompt file is what ships.
DSPY_STATE_MAX_BYTES = 200_000
#: A before/after example's text fields are cut to this when the examples do not fit.
EXAMPLE_FIELD_CHARS = 2_000
#: An exported prompt's text may take this much of its event, the rest is for demos and notes.
PROMPT_BYTES_MAX = 800_000


class ResultTooLarge(ValueError):
    """The job's export cannot be stored as an event; the message says what to change."""


def json_bytes(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (what the codec writes, up to key order)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def _size(event: Any) -> int:
    return len(event.model_dump_json().encode())


def _omitted_state(state: dict[str, Any], size: int) -> dict[str, Any]:
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str).encode()
    return {
        "dspy_state_omitted": True,
        "sha256": hashlib.sha256(canonical).hexdigest(),
        "size_bytes": size,
        "reason": f"over the {DSPY_STATE_MAX_BYTES}-byte cap of a prompt version event",
    }


def prompt_problem(text: str, what: str = "the exported prompt") -> str | None:
    """Why ``text`` cannot be a prompt version's text, or None."""
    if len(text) > MAX_PROMPT_CHARS:
        return f"{what} has {len(text)} characters; at most {MAX_PROMPT_CHARS} are stored"
    if (size := json_bytes(text)) > PROMPT_BYTES_MAX:
        return f"{what} encodes to {size} bytes; at most {PROMPT_BYTES_MAX} fit in its event"
    return None


def fit_version(event: PromptVersionCreated) -> tuple[PromptVersionCreated, list[str]]:
    """``event`` shrunk to fit a record, and notes on what was left out; or ResultTooLarge."""
    if problem := prompt_problem(event.prompt_text):
        raise ResultTooLarge(f"{problem}; the job's export cannot be stored")
    notes: list[str] = []
    state_size = json_bytes(event.dspy_state)
    if state_size > DSPY_STATE_MAX_BYTES or (_size(event) > EVENT_BUDGET and event.dspy_state):
        event = event.model_copy(update={"dspy_state": _omitted_state(event.dspy_state, state_size)})
        notes.append(f"dspy_state omitted from the prompt version ({state_size} bytes; sha256 in its place)")
    if _size(event) > EVENT_BUDGET:
        kept = _fitting_prefix(event.demos, EVENT_BUDGET - _size(event.model_copy(update={"demos": []})))
        notes.append(f"demos truncated: {kept} of {len(event.demos)} kept in the prompt version event")
        event = event.model_copy(update={"demos": event.demos[:kept]})
    if (size := _size(event)) > EVENT_BUDGET:
        raise ResultTooLarge(f"the prompt version event is {size} bytes; at most {EVENT_BUDGET} fit")
    return event, notes


def _fitting_prefix(items: Sequence[Any], room: int) -> int:
    """How many leading ``items`` fit in ``room`` bytes as a JSON list."""
    used, kept = 2, 0
    for item in items:
        used += json_bytes(item) + 1
        if used > room:
            break
        kept += 1
    return kept


def _cut(text: str) -> str:
    if len(text) <= EXAMPLE_FIELD_CHARS:
        return text
    return f"{text[:EXAMPLE_FIELD_CHARS]}… [truncated: {len(text)} characters]"


def _cut_example(example: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {k: _cut(v) for k, v in value.items()}
        if isinstance(value, dict)
        else (_cut(value) if isinstance(value, str) else value)
        for key, value in example.items()
    }


def fit_metadata_event(event: jb.JobCompiled | jb.JobFailed) -> jb.JobCompiled | jb.JobFailed:
    """``JobCompiled`` (examples) or ``JobFailed`` (metadata) shrunk to fit, with notes."""
    if _size(event) <= EVENT_BUDGET:
        return event
    meta = dict(event.job_metadata)
    notes = list(meta.get("notes") or [])
    if isinstance(event, jb.JobCompiled) and event.examples:
        examples = [_cut_example(e) for e in event.examples]
        room = EVENT_BUDGET - _size(event.model_copy(update={"examples": []}))
        kept = _fitting_prefix(examples, room - 200)  # the note below takes a little room too
        notes.append(
            f"before/after examples cut to {EXAMPLE_FIELD_CHARS} characters; {kept} of {len(examples)} kept"
        )
        meta["notes"] = notes
        event = event.model_copy(update={"examples": examples[:kept], "job_metadata": meta})
    for key in ("labels", "candidates", "notes"):  # lists that grow with the data
        if _size(event) <= EVENT_BUDGET:
            break
        values = list(meta.get(key) or [])
        if values:
            room = EVENT_BUDGET - _size(event.model_copy(update={"job_metadata": {**meta, key: []}})) - 200
            kept = _fitting_prefix(values, room)
            meta = {**meta, key: values[:kept], f"{key}_truncated_from": len(values)}
            event = event.model_copy(update={"job_metadata": meta})
    if (size := _size(event)) > EVENT_BUDGET:
        raise ResultTooLarge(f"the {type(event).__name__} event is {size} bytes; at most {EVENT_BUDGET} fit")
    return event


def _demo_bound(example: Example, spec: JobSpec, body_chars: int) -> tuple[int, int]:
    """(characters, bytes) an example can add to the export as one rendered demo, at most."""
    text = "\n".join(f"{name}: {example.inputs.get(name, '')}" for name in spec.input_fields)
    text += f"\nAnswer: {example.output}"
    text += "{" * text.count("{") + "}" * text.count("}")  # braces doubled by the template escape
    if spec.prompt_contract == "messages":
        text = json.dumps(text, ensure_ascii=False) + " " * body_chars  # each turn repeats the template
    return len(text) + 64, json_bytes(text) + 64


def input_problem(spec: JobSpec) -> str | None:
    """Why the job's result could not be stored whatever the run finds, or None (before any spend)."""
    current = spec.current_prompt or ""
    if problem := prompt_problem(current, "the task's current prompt"):
        return problem
    slots = spec.max_bootstrapped_demos + spec.max_labeled_demos
    if slots == 0:
        return None
    bounds = [_demo_bound(e, spec, len(current)) for e in spec.usable_examples()]
    shown = min(slots, len(bounds))
    chars = len(current) + sum(sorted((c for c, _ in bounds), reverse=True)[:slots])
    size = json_bytes(current) + sum(sorted((b for _, b in bounds), reverse=True)[:slots])
    if chars <= MAX_PROMPT_CHARS and size <= PROMPT_BYTES_MAX:
        return None
    return (
        f"the task's {shown} largest usable examples, shown as demos, could make an exported "
        f"prompt of {chars} characters ({size} bytes); at most {MAX_PROMPT_CHARS} characters "
        f"({PROMPT_BYTES_MAX} bytes) can be stored. Lower evaluator_config max_bootstrapped_demos "
        "and max_labeled_demos (0 for none), or send shorter examples"
    )
