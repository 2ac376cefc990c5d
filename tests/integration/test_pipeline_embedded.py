"""The real thing: SmolLM2-135M under llama.cpp, reached over HTTP by LiteLLM and DSPy.

A 135M model answers poorly, so these tests assert structure and plausibility — every
figure measured, scores in range, the run never dying of a bad answer — not exact text.
The MIPROv2 run makes about 40 calls: about a minute on 2 idle cores.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from services.optimizer.metering import Meter
from shared.llm.embedded import LITELLM_MODEL, MODEL_ALIAS, EmbeddedLLM

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]

POSITIVE = [
    "I loved this movie",
    "What a wonderful day",
    "The food was delicious",
    "Great service, very friendly staff",
    "This book is fantastic",
    "I am so happy with my purchase",
    "Absolutely brilliant performance",
    "The hotel was clean and cozy",
    "Best concert I have ever seen",
    "The new phone works perfectly",
]
NEGATIVE = [
    "I hated this movie",
    "What a terrible day",
    "The food was cold and bland",
    "Rude staff and slow service",
    "This book is boring",
    "I regret buying this",
    "Awful acting from start to end",
    "The room was dirty and noisy",
    "Worst concert ever",
    "The phone broke after one day",
]


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedLLM]:
    with EmbeddedLLM(threads=2) as llm:
        yield llm


def chat(llm: EmbeddedLLM, **body: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{llm.api_base}/chat/completions",
        data=json.dumps({"model": MODEL_ALIAS, "temperature": 0, **body}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        reply: dict[str, Any] = json.loads(response.read())
    return reply


def test_the_embedded_model_answers_chat_completions_over_http(embedded: EmbeddedLLM) -> None:
    reply = chat(embedded, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16)

    assert reply["model"] == MODEL_ALIAS
    assert reply["choices"][0]["message"]["content"].strip()
    assert reply["usage"]["prompt_tokens"] > 0 and 0 < reply["usage"]["completion_tokens"] <= 16


def test_the_embedded_model_is_held_to_a_json_schema(embedded: EmbeddedLLM) -> None:
    schema = {
        "type": "object",
        "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative"]}},
        "required": ["sentiment"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": schema, "strict": True},
    }
    for text in ["I loved it!", "Terrible, boring film.", "Write me a poem about the sea."]:
        reply = chat(
            embedded,
            messages=[{"role": "user", "content": text}],
            max_tokens=40,
            response_format=response_format,
        )
        parsed = json.loads(reply["choices"][0]["message"]["content"])
        assert parsed["sentiment"] in {"positive", "negative"}


def test_serve_forever_stops_cleanly_on_sigterm() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        f"from shared.llm.embedded import serve_forever; serve_forever({port})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        log = ""
        while "embedded LLM ready" not in log:
            line = proc.stderr.readline()
            assert line, f"the embedded LLM exited early: {log[-2000:]}"
            log += line
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, rest[-2000:]
    assert "received signal" in rest
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_the_judge_scores_with_the_embedded_model_without_crashing(embedded: EmbeddedLLM) -> None:
    import dspy

    from services.optimizer.metrics import build_metric
    from services.optimizer.pipeline.dspy_pinned import ContractAdapter
    from services.optimizer.pipeline.models import make_lm

    spec = sentiment_spec(embedded)
    meter = Meter()
    judge = build_metric("llm_judge", judge=make_lm(spec, LITELLM_MODEL, meter))
    with dspy.context(adapter=ContractAdapter(meter, "system", ["text"])):
        scores = [
            judge({"text": "I loved it"}, "positive", answer)
            for answer in ("Positive.", "negative", "The review is positive")
        ]

    assert scores[0] == 1.0  # equal after normalization: no judge call needed
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert meter.snapshot().llm_calls == 2
    assert meter.incidents["judge_failures"] <= 2


def sentiment_spec(llm: EmbeddedLLM, **overrides: Any) -> Any:
    from services.optimizer.spec import Example, JobSpec, ModelEndpoint

    examples = [Example(inputs={"text": t}, output="positive", score=1.0) for t in POSITIVE]
    examples += [Example(inputs={"text": t}, output="negative", score=1.0) for t in NEGATIVE]
    examples += [Example(inputs={"text": "Meh, it was fine"}, output="negative", score=0.2)]
    fields: dict[str, Any] = {
        "job_id": uuid.uuid4(),
        "task_id": uuid.uuid4(),
        "task_name": "Sentiment of a short review",
        "input_fields": ["text"],
        "models": {LITELLM_MODEL: ModelEndpoint(api_base=llm.api_base)},
        "examples": examples,
        "current_prompt": "Is this review positive or negative?",
        # The first label in the answer counts: fair to a small model that explains itself.
        "metric": "regex",
        "metric_options": {"pattern": r"\b(positive|negative)\b"},
        "max_trials": 2,
        "max_bootstrapped_demos": 3,
        "max_labeled_demos": 3,
        "max_tokens": 48,
        "num_threads": 2,
        "seed": 1,
        **overrides,
    }
    return JobSpec.model_validate(fields)


@pytest.mark.timeout(900)  # ~1 min on 2 idle cores; several times that on a busy machine
def test_a_real_mipro_run_on_smollm2_is_measured_end_to_end(embedded: EmbeddedLLM) -> None:
    from services.optimizer.pipeline.run import run_job
    from services.optimizer.spec import Stage, Trial, Usage

    events: list[Any] = []
    started = time.monotonic()
    result = run_job(sentiment_spec(embedded), events.append, lambda: False)
    elapsed = time.monotonic() - started

    figures = result.model_dump(
        include={
            "baseline_score",
            "optimized_score",
            "export_score",
            "trials_completed",
            "llm_calls",
            "prompt_tokens",
            "completion_tokens",
            "parse_failures",
            "proposals_dropped",
            "program_export_score",
            "chosen_candidate",
            "train_size",
            "val_size",
        }
    )
    print(f"\nembedded end-to-end: {elapsed:.1f} s, {figures}")
    assert (result.train_size, result.val_size, result.excluded_examples) == (16, 4, 1)
    for score in (result.baseline_score, result.optimized_score, result.export_score):
        assert score is not None and 0.0 <= score <= 1.0
    assert result.trials_completed == 2 == len([e for e in events if isinstance(e, Trial)])
    # The baseline, 3 evaluations inside MIPROv2, and at least two more candidates re-scored.
    assert result.llm_calls >= 6 * result.val_size
    assert result.prompt_tokens > result.completion_tokens > 0
    assert result.cost_usd == 0.0
    assert [e for e in events if isinstance(e, Usage)][-1].llm_calls == result.llm_calls
    assert [e.step for e in events if isinstance(e, Stage)] == [
        "loading",
        "evaluating",
        "compiling",
        "exporting",
    ]
    assert result.export_score >= result.baseline_score  # the baseline is a candidate too
    assert "baseline" in {c.name for c in result.candidates} and result.program_export_score is not None
    assert len(result.examples) == result.val_size and all(e.after is not None for e in result.examples)
