"""The import's pure rules: when a task's prompt file is read, and what reading it decides."""

from __future__ import annotations

import uuid

from services.pr_publisher.domain import decide_import, wants_import
from shared.events.prompts import PromptActivated, PromptImportAttempted, PromptVersionCreated

TASK = uuid.UUID("0b1c2d3e-4f50-4a1b-9c2d-3e4f5a6b7c8d")
GIT = {
    "git_provider": "github",
    "git_repo": "acme/app",
    "git_token_encrypted": "gAAA…",
    "prompt_path": "p.txt",
}


def test_a_new_task_with_reachable_git_settings_imports() -> None:
    assert wants_import(GIT)
    assert not wants_import({**GIT, "git_token_encrypted": None})
    assert not wants_import({k: v for k, v in GIT.items() if k != "prompt_path"})


def test_only_changes_to_where_the_file_is_or_how_to_reach_it_import_again() -> None:
    assert wants_import(GIT, {"prompt_locator": "a.b"})
    assert wants_import(GIT, {"git_token_encrypted": "gAAB…", "description": "x"})
    assert not wants_import(GIT, {"feedback_threshold": 7, "prompt_contract": "template"})


def decide(prompt: str, active: str | None = None, request: str = "r1", **settings: object) -> list[object]:
    return decide_import(  # type: ignore[return-value]
        TASK, request, {**GIT, **settings}, prompt=prompt, branch="main", blob_sha="abc", active_prompt=active
    )


def test_a_new_prompt_is_created_activated_and_reported_with_ids_a_redelivery_repeats() -> None:
    created, activated, outcome = decide("Classify: {text}", prompt_contract="template")

    assert isinstance(created, PromptVersionCreated) and created.source == "repository"
    assert created.job_id is None and created.prompt_text == "Classify: {text}"
    assert activated == PromptActivated(task_id=TASK, prompt_version_id=created.prompt_version_id)
    assert isinstance(outcome, PromptImportAttempted) and outcome.outcome == "imported"
    assert decide("Classify: {text}", prompt_contract="template") == [created, activated, outcome]
    # A later change importing the same file again (after another version was active) is a new draft.
    [again, *_] = decide("Classify: {text}", request="r2", prompt_contract="template")
    assert isinstance(again, PromptVersionCreated)
    assert again.prompt_version_id != created.prompt_version_id


def test_the_active_prompt_again_changes_nothing() -> None:
    [outcome] = decide("Summarize.", active="Summarize.")

    assert isinstance(outcome, PromptImportAttempted) and outcome.outcome == "unchanged"


def test_a_prompt_invalid_under_the_contract_activates_nothing() -> None:
    [outcome] = decide("Summarize.", prompt_contract="template", input_schema=["text"])

    assert isinstance(outcome, PromptImportAttempted) and outcome.outcome == "failed"
    assert outcome.reason is not None and "not a valid 'template' prompt" in outcome.reason
    assert outcome.prompt_version_id is None
