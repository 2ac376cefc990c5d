"""A job's result events are fitted under the broker's record limit (issue 11, finding 7)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import pytest

from services.optimizer import event_budget as eb
from shared.events import codec
from shared.events import jobs as jb
from shared.events.envelope import Envelope
from shared.events.prompts import PromptVersionCreated
from shared.events.topics import Topics
from shared.kafka.producer import MAX_EVENT_BYTES, EventLog, EventTooLarge
from shared.prompt_contract import MAX_PROMPT_CHARS

IDS = {"job_id": uuid.uuid4(), "task_id": uuid.uuid4()}


def version(
    prompt: str = "Name the team.", demos: int = 0, demo_chars: int = 10, state_bytes: int = 0
) -> PromptVersionCreated:
    return PromptVersionCreated(
        prompt_version_id=uuid.uuid4(),
        **IDS,
        prompt_text=prompt,
        demos=[{"ticket": "t" * demo_chars, "output": "team"} for _ in range(demos)],
        dspy_state={"predict": {"signature": {"instructions": "s" * state_bytes}}} if state_bytes else {},
    )


def wrapped_size(event: Any) -> int:
    return len(codec.encode(Envelope.wrap(event, source="optimizer")))


def test_a_small_version_is_left_as_it_is() -> None:
    event = version(demos=2, state_bytes=1000)
    assert eb.fit_version(event) == (event, [])


def test_a_large_dspy_state_is_replaced_by_its_hash_and_size() -> None:
    event = version(state_bytes=eb.DSPY_STATE_MAX_BYTES + 10)
    fitted, notes = eb.fit_version(event)
    canonical = json.dumps(event.dspy_state, sort_keys=True, separators=(",", ":")).encode()
    assert fitted.dspy_state["dspy_state_omitted"] is True
    assert fitted.dspy_state["sha256"] == hashlib.sha256(canonical).hexdigest()
    assert fitted.dspy_state["size_bytes"] == eb.json_bytes(event.dspy_state)
    assert fitted.prompt_text == event.prompt_text and fitted.demos == event.demos
    assert notes and "dspy_state omitted" in notes[0]


def test_demos_that_do_not_fit_are_truncated_with_a_note() -> None:
    event = version(demos=20, demo_chars=90_000, state_bytes=100)
    fitted, notes = eb.fit_version(event)
    assert 0 < len(fitted.demos) < 20 and fitted.demos == event.demos[: len(fitted.demos)]
    assert any(f"{len(fitted.demos)} of 20 kept" in n for n in notes)
    assert wrapped_size(fitted) <= MAX_EVENT_BYTES


def test_an_export_over_the_prompt_cap_is_refused_not_cut() -> None:
    with pytest.raises(eb.ResultTooLarge, match=str(MAX_PROMPT_CHARS)):
        eb.fit_version(version(prompt="p" * (MAX_PROMPT_CHARS + 1)))


def test_an_export_under_the_character_cap_but_over_the_byte_budget_is_refused() -> None:
    # Control characters are escaped as \u00XX: six bytes each in the event.
    with pytest.raises(eb.ResultTooLarge, match="bytes"):
        eb.fit_version(version(prompt="\x01" * (MAX_PROMPT_CHARS - 1)))


def test_compiled_examples_are_cut_and_truncated_to_fit() -> None:
    examples = [
        {"inputs": {"ticket": "x" * 300_000}, "expected": "y" * 300_000, "before": "b", "after": "a"}
    ] * 5
    event = jb.JobCompiled(
        **IDS, prompt_version_id=uuid.uuid4(), job_metadata={"notes": []}, examples=examples, publish=True
    )
    fitted = eb.fit_metadata_event(event)
    assert isinstance(fitted, jb.JobCompiled)
    assert fitted.examples and len(fitted.examples[0]["inputs"]["ticket"]) < 3000
    assert "truncated: 300000 characters" in fitted.examples[0]["inputs"]["ticket"]
    assert any("before/after examples cut" in n for n in fitted.job_metadata["notes"])
    assert wrapped_size(fitted) <= MAX_EVENT_BYTES


def test_metadata_lists_that_grow_with_the_data_are_cut_to_fit() -> None:
    labels = [f"label {i} " + "z" * 1000 for i in range(2000)]
    event = jb.JobFailed(
        **IDS, error_message="budget", kind="budget_exhausted", job_metadata={"labels": labels}
    )
    fitted = eb.fit_metadata_event(event)
    assert 0 < len(fitted.job_metadata["labels"]) < 2000
    assert fitted.job_metadata["labels_truncated_from"] == 2000
    assert wrapped_size(fitted) <= MAX_EVENT_BYTES


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: object = None
    ) -> asyncio.Future[Any]:
        self.sent.append(value)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(type("Meta", (), {"topic": topic, "partition": 0, "offset": len(self.sent)})())
        return future


async def test_an_oversized_event_sends_nothing_of_its_batch() -> None:
    log = EventLog("unused:9092", Topics("t"), client_id="test")
    producer = RecordingProducer()
    log._producer = producer  # type: ignore[assignment]  # connected already, to this stand-in
    small = Envelope.wrap(version(), source="optimizer")
    huge = Envelope.wrap(version(prompt="p" * (MAX_EVENT_BYTES + 1)), source="optimizer")
    with pytest.raises(EventTooLarge, match=r"kaizen\.prompt\.version_created\.v1"):
        await log.append_all([small, huge])
    assert producer.sent == []
    await log.append_all([small])
    assert len(producer.sent) == 1
