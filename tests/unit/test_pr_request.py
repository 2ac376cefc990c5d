"""The PR a compiled job asks for carries every figure the job measured."""

from __future__ import annotations

from types import SimpleNamespace

from services.pr_publisher.publisher import build_pr_request

SETTINGS = {
    "name": "sentiment",
    "git_provider": "github",
    "git_repo": "demo/app",
    "prompt_path": "prompts/sentiment.txt",
    "prompt_contract": "template",
}
META = {
    "baseline_score": 0.6875,
    "optimized_score": 0.8125,
    "export_score": 0.875,
    "train_size": 64,
    "val_size": 16,
    "metric": "auto",
    "effective_metric": "label_match",
    "test_size": 20,
    "test_baseline_score": 0.7,
    "test_export_score": 0.9,
}


def test_the_body_shows_held_out_scores_the_contract_and_the_metric_the_job_chose() -> None:
    job = SimpleNamespace(job_id="f6fc4a40-46bd", version_id="490c530a", job_metadata=META, examples=[])

    request = build_pr_request(SETTINGS, job, "Text: {text}\nAnswer:", "token")

    assert "Held-out test (20 examples no step of the job saw)" in request.body
    assert "0.700 → **0.900** (+0.200)" in request.body
    assert "- Prompt contract: template" in request.body
    assert "- Metric: label_match" in request.body
    assert request.title == "kaizen: improve sentiment prompt (0.69 → 0.88)"
