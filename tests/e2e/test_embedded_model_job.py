"""The whole loop on a fresh machine: the embedded SmolLM2 (llama.cpp, over HTTP through
LiteLLM) drives a real MIPROv2 job that the feedback threshold starts, through the API.

The task uses the ``template`` contract, the one the 135M model follows. With 20 examples
the validation set is 4 sentences, too few to promise an improvement, so this asserts
the journey, that every figure is measured and plausible, and that the export is never
below the baseline (the baseline is always a candidate; docs/scores.md)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shared.llm.embedded import LITELLM_MODEL, EmbeddedLLM
from tests.e2e.test_optimization_jobs import only_job, wait_terminal
from tests.integration.test_pipeline_embedded import NEGATIVE, POSITIVE
from tests.support.live import live_system

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]
RUN = {
    "metric": "regex",
    "metric_options": {"pattern": r"\b(positive|negative)\b"},
    "max_trials": 2,
    "max_bootstrapped_demos": 3,
    "max_labeled_demos": 3,
    "max_tokens": 48,
}


def test_a_threshold_job_on_the_embedded_model_reaches_success_with_measured_figures(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {"KAIZEN_DEFAULT_TEACHER_MODEL": LITELLM_MODEL, "KAIZEN_DEFAULT_JUDGE_MODEL": LITELLM_MODEL}
    with (
        EmbeddedLLM(threads=2) as llm,
        live_system(kafka_bootstrap, tmp_path, env={**env, "KAIZEN_LLM_API_BASE": llm.api_base}) as live,
    ):
        status, task = live.request(
            "POST",
            "/api/v1/tasks",
            {
                "name": "review-sentiment",
                "schema_json": ["text"],
                "feedback_threshold": 20,
                "prompt_contract": "template",
                "evaluator_config": RUN,
            },
        )
        assert status == 201, task
        for text, label in [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]:
            body = {"task_id": task["id"], "inputs": {"text": text}, "output": label, "score": 1.0}
            assert live.request("POST", "/api/v1/feedback", body)[0] == 201
        started = time.monotonic()
        job, _ = wait_terminal(live, only_job(live, task["id"])["id"], timeout=840)
        _, history = live.request("GET", f"/api/v1/jobs/{job['id']}/events")
        _, versions = live.request("GET", f"/api/v1/prompts/{task['id']}/versions")
    assert job["status"] == "SUCCESS", job["error_message"]
    types = [e["type"].split(".")[2] for e in history]
    assert types[:4] == ["requested", "started", "evaluating", "compiling"], types
    assert "trial_completed" in types and types[-1] == "succeeded"
    meta = job["job_metadata"]
    assert (meta["train_size"], meta["val_size"]) == (16, 4)
    assert meta["teacher_model"] == meta["judge_model"] == LITELLM_MODEL
    assert meta["trials_completed"] >= 1 and meta["llm_calls"] > 10
    assert meta["tokens"]["prompt"] > 0 and meta["tokens"]["completion"] > 0
    assert meta["cost_usd"] == 0.0  # a local model costs nothing
    assert 0 < meta["duration_seconds"] <= time.monotonic() - started + 5
    for score in ("baseline_score", "optimized_score", "export_score"):
        assert 0.0 <= meta[score] <= 1.0, score
    assert meta["export_score"] >= meta["baseline_score"]
    assert meta["prompt_contract"] == "template" and meta["chosen_candidate"]
    assert {c["name"] for c in meta["candidates"]} >= {"baseline"}
    assert meta["optimizer"] == "MIPROv2" and meta["dspy_version"].startswith("3.")
    assert len(meta["dataset_hash"]) == 64
    assert [v["id"] for v in versions] == [job["prompt_version_id"]]
    assert versions[0]["prompt_text"].strip()
