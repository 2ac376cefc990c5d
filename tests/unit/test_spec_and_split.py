"""The job spec, the dataset a job learns from, and the export contract's rendering."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.optimizer.pipeline.dataset import prepare_dataset, three_way_sizes
from services.optimizer.spec import (
    Baseline,
    Example,
    JobFailed,
    JobSpec,
    ModelEndpoint,
    Stage,
    Trial,
    Usage,
    dataset_hash,
    progress_adapter,
)


def _examples(n: int, score: float = 0.9, prefix: str = "text") -> list[Example]:
    return [Example(inputs={"text": f"{prefix} {i}"}, output=f"label {i % 3}", score=score) for i in range(n)]


def _spec(examples: list[Example], **overrides: object) -> JobSpec:
    fields: dict[str, object] = {
        "job_id": uuid.uuid4(),
        "task_id": uuid.uuid4(),
        "task_name": "Label texts",
        "input_fields": ["text"],
        "examples": examples,
        **overrides,
    }
    return JobSpec.model_validate(fields)


def test_52_gold_examples_split_into_41_and_11() -> None:
    data = prepare_dataset(_spec(_examples(52)))
    assert (len(data.train), len(data.val)) == (41, 11)


def test_low_scored_outputs_are_never_gold() -> None:
    gold = _examples(20, score=0.9, prefix="good")
    bad = _examples(15, score=0.3, prefix="bad") + _examples(5, score=0.69, prefix="meh")
    data = prepare_dataset(_spec(gold + bad))
    used = {e.inputs["text"] for e in data.train + data.val}
    assert used == {e.inputs["text"] for e in gold}
    assert data.excluded == 20


def test_the_gold_threshold_is_configurable() -> None:
    data = prepare_dataset(_spec(_examples(12, score=0.5), min_score_for_gold=0.5))
    assert len(data.train) + len(data.val) == 12


def test_examples_missing_an_input_or_an_output_are_excluded() -> None:
    broken = [
        Example(inputs={"other": "x"}, output="y", score=1.0),
        Example(inputs={"text": "x"}, output=" ", score=1.0),
    ]
    data = prepare_dataset(_spec(_examples(10) + broken))
    assert data.excluded == 2


def test_too_few_usable_examples_fail_with_counts() -> None:
    with pytest.raises(JobFailed) as failed:
        prepare_dataset(_spec(_examples(4) + _examples(30, score=0.1, prefix="bad")))
    assert failed.value.failure.kind == "too_few_examples"
    assert failed.value.failure.error_message == (
        "too few usable examples: have 4 with score ≥ 0.7, need at least 10"
    )


def test_the_split_depends_on_the_seed_not_on_arrival_order() -> None:
    examples = _examples(30)
    first = prepare_dataset(_spec(examples, seed=5))
    reordered = prepare_dataset(_spec(list(reversed(examples)), seed=5))
    other_seed = prepare_dataset(_spec(examples, seed=6))
    assert first.val == reordered.val and first.train == reordered.train
    assert first.val != other_seed.val


def test_the_dataset_hash_is_stable_and_order_independent() -> None:
    examples = _examples(12)
    assert dataset_hash(examples) == dataset_hash(list(reversed(examples)))
    assert (
        dataset_hash(examples)
        == _spec(examples).dataset_hash()
        == prepare_dataset(_spec(examples)).dataset_hash
    )
    assert len(dataset_hash(examples)) == 64
    changed = [*examples[:-1], examples[-1].model_copy(update={"score": 0.95})]
    assert dataset_hash(changed) != dataset_hash(examples)


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=8))
def test_the_hash_is_a_function_of_the_examples(texts: list[str]) -> None:
    examples = [Example(inputs={"text": t}, output=t[::-1], score=1.0) for t in texts]
    assert dataset_hash(examples) == dataset_hash([e.model_copy() for e in examples])


@pytest.mark.parametrize("fields", [["output"], ["has space"], ["a", "a"], []])
def test_input_fields_must_be_distinct_identifiers(fields: list[str]) -> None:
    with pytest.raises(ValidationError):
        _spec(_examples(10), input_fields=fields)


def test_the_spec_is_frozen_and_strict() -> None:
    spec = _spec(_examples(10))
    with pytest.raises(ValidationError):
        spec.seed = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        _spec(_examples(10), surprise=True)


def test_an_api_key_is_masked_in_repr_but_reaches_the_worker() -> None:
    spec = _spec(
        _examples(10), models={"openai/x": ModelEndpoint(api_base="http://h/v1", api_key="sk-secret")}
    )
    assert "sk-secret" not in repr(spec)
    assert "sk-secret" not in str(spec.model_dump())
    restored = JobSpec.model_validate_json(spec.model_dump_json())
    key = restored.models["openai/x"].api_key
    assert key is not None and key.get_secret_value() == "sk-secret"


def test_progress_events_round_trip_through_json() -> None:
    events = [
        Stage(step="compiling", detail="x"),
        Baseline(score=0.4),
        Trial(trial=2, score=0.5, best=0.6, total=10),
        Usage(llm_calls=3, prompt_tokens=10, completion_tokens=2, cost_usd=0.001),
    ]
    for event in events:
        assert progress_adapter.validate_json(event.model_dump_json()) == event
        assert json.loads(event.model_dump_json())["type"] == event.type


def test_from_60_usable_examples_a_fifth_is_held_out_for_test_first() -> None:
    assert three_way_sizes(59) == (47, 12, 0)
    assert three_way_sizes(60) == (38, 10, 12)
    assert three_way_sizes(100) == (64, 16, 20)
    data = prepare_dataset(_spec(_examples(100)))
    assert (len(data.train), len(data.val), len(data.test)) == (64, 16, 20)
    seen = {e.canonical_json() for e in [*data.train, *data.val]}
    assert not seen & {e.canonical_json() for e in data.test}


@given(st.integers(min_value=0, max_value=5000))
def test_the_three_splits_always_add_up(n: int) -> None:
    train, val, test = three_way_sizes(n)
    assert train + val + test == n and min(train, val, test) >= 0
