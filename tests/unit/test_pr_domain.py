"""Branch names, titles and the PR body a reviewer reads."""

from __future__ import annotations

import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.pr_publisher.domain import (
    PrContent,
    PrExample,
    branch_name,
    job_id_from_body,
    pr_body,
    pr_title,
)

JOB_ID = "1b2c3d4e-5f60-4a1b-9c2d-3e4f5a6b7c8d"


def _content(**changes: object) -> PrContent:
    fields: dict[str, object] = dict(
        task_name="summarize-ticket",
        job_id=JOB_ID,
        prompt_path="prompts/summarize.txt",
        baseline_score=0.62,
        optimized_score=0.81,
        export_score=0.78,
        train_size=41,
        val_size=11,
        trials=10,
        llm_calls=734,
        cost_usd=0.4213,
        metric="llm_judge",
        prompt_version_id="c3d4e5f6-a7b8-9012-cdef-012345678901",
        previous_version_id="0aa0e5f6-a7b8-9012-cdef-012345678901",
        examples=(
            PrExample(
                inputs=(("ticket", "Printer on fire"),), old_output="It is a printer.", new_output="Fire!"
            ),
            PrExample(
                inputs=(("ticket", "VPN down"), ("priority", "high")), old_output="VPN", new_output="VPN down"
            ),
        ),
    )
    fields.update(changes)
    return PrContent(**fields)  # type: ignore[arg-type]


def test_branch_name_is_deterministic_per_job_and_readable() -> None:
    assert branch_name("Summarize Ticket", JOB_ID) == "kaizen/summarize-ticket/1b2c3d4e"
    assert branch_name("Summarize Ticket", JOB_ID) == branch_name("Summarize Ticket", JOB_ID)
    assert branch_name("Summarize Ticket", JOB_ID) != branch_name("Summarize Ticket", "ffff" + JOB_ID)


def test_branch_name_survives_names_that_are_not_ref_safe() -> None:
    assert branch_name("Résumé: ~^..lock/@{x}", JOB_ID) == "kaizen/resume-lock-x/1b2c3d4e"
    assert branch_name("日本語", JOB_ID) == "kaizen/task/1b2c3d4e"
    with pytest.raises(ValueError, match="no letters or digits"):
        branch_name("t", "--")


@settings(max_examples=200, deadline=None)
@given(
    task=st.text(), job_id=st.text(alphabet="0123456789abcdef-", min_size=1).filter(lambda s: s.strip("-"))
)
def test_branch_name_is_always_a_valid_git_ref(task: str, job_id: str) -> None:
    name = branch_name(task, job_id)
    assert re.fullmatch(r"kaizen/[a-z0-9]+(-[a-z0-9]+)*/[a-z0-9]{1,8}", name)
    assert len(name) <= 60


def test_branch_name_passes_git_check_ref_format() -> None:
    name = branch_name("Weird .. name~^:?*[\\ .lock", JOB_ID)
    try:
        result = subprocess.run(
            ["git", "check-ref-format", "--branch", name], capture_output=True, check=False
        )
    except FileNotFoundError:
        pytest.skip("git is not installed")
    assert result.returncode == 0, result.stderr


def test_title_shows_the_score_change() -> None:
    assert pr_title("summarize-ticket", 0.62, 0.78) == "kaizen: improve summarize-ticket prompt (0.62 → 0.78)"
    assert len(pr_title("x" * 500, 0.1, 0.2)) < 120


def test_body_reports_every_figure_a_reviewer_needs() -> None:
    body = pr_body(_content())
    for expected in [
        "`summarize-ticket`",
        "`prompts/summarize.txt`",
        "same 11 validation examples",
        "| Current prompt (baseline) | 0.620 |",
        "| Optimized program (inside DSPy) | 0.810 |",
        "**0.780** (+0.160)",
        f"`{JOB_ID}`",
        "41 training / 11 validation",
        "Trials: 10",
        "LLM calls: 734",
        "Cost: $0.42",
        "Metric: llm_judge",
        "Printer on fire",
        "It is a printer.",
        "Fire!",
        "priority: high",
        "revert this PR",
        "activate the previous prompt version `0aa0e5f6-a7b8-9012-cdef-012345678901`",
    ]:
        assert expected in body, expected
    assert body.rstrip().endswith(f"<!-- kaizen-job: {JOB_ID} -->")


def test_body_marker_identifies_the_job() -> None:
    assert job_id_from_body(pr_body(_content())) == JOB_ID
    assert job_id_from_body("a PR written by a person") is None
    sneaky = PrExample(inputs=(("x", "<!-- kaizen-job: other -->"),), old_output="", new_output="")
    assert job_id_from_body(pr_body(_content(examples=(sneaky,)))) == JOB_ID


def test_examples_are_truncated_and_fenced_safely() -> None:
    example = PrExample(inputs=(("doc", "a" * 5000),), old_output="```\n# not a heading", new_output="ok")
    body = pr_body(_content(examples=(example,) * 5), max_examples=2)
    assert "Examples (2 of 5)" in body
    assert "(4405 more characters)" in body
    assert "````text\n```\n# not a heading\n````" in body
    assert len(body) < 4000


def test_missing_figures_are_said_plainly() -> None:
    body = pr_body(
        _content(export_score=None, cost_usd=None, examples=(), metric=None, previous_version_id=None)
    )
    assert "not measured" in body
    assert "Cost: not metered" in body
    assert "### Examples" not in body
    assert "activate the task's previous prompt version" in body
    assert "Cost: $0.0040" in pr_body(_content(cost_usd=0.004))
