"""What a Kaizen pull request says, and what importing a task's prompt file decides. Pure, no I/O.

The body is what a reviewer decides on, so it shows the figures that justify the change
(baseline and optimized scores on the same validation set, and the re-score of the exact
text written to the file), what the run cost, a few before/after examples, and how to
undo it. A hidden marker carries the job id, so an existing PR can be recognised.

The import (:func:`wants_import`, :func:`decide_import`) makes the prompt the application
runs today, read from the repository, the task's active prompt: the baseline a job must beat.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.events.base import Event, derive_id
from shared.events.prompts import PromptActivated, PromptImportAttempted, PromptVersionCreated
from shared.events.tasks import input_field_names
from shared.prompt_contract import PromptContractError, parse_prompt

_MARKER = "<!-- kaizen-job: {job_id} -->"
_MARKER_AT_END = re.compile(r"<!-- kaizen-job: (\S+) -->\s*\Z")
_EXAMPLE_CHARS = 600
_TITLE_TASK_CHARS = 80


@dataclass(frozen=True)
class PrExample:
    """One validation example: the task's inputs and the outputs of the old and new prompt."""

    inputs: tuple[tuple[str, str], ...]
    old_output: str
    new_output: str


@dataclass(frozen=True)
class PrContent:
    """Everything the PR body reports about one job.

    ``baseline_score`` (current prompt), ``optimized_score`` (the compiled program) and
    ``export_score`` (the exported prompt text, called the way the application calls it)
    are all measured on the same ``val_size`` validation examples.
    """

    task_name: str
    job_id: str
    prompt_path: str
    baseline_score: float
    optimized_score: float
    export_score: float | None
    train_size: int
    val_size: int
    trials: int
    llm_calls: int
    cost_usd: float | None
    examples: tuple[PrExample, ...] = ()
    metric: str | None = None
    prompt_version_id: str | None = None
    previous_version_id: str | None = None
    test_size: int = 0
    test_baseline_score: float | None = None
    test_export_score: float | None = None
    prompt_contract: str | None = None


def branch_name(task_name: str, job_id: str) -> str:
    """``kaizen/<task-slug>/<job id prefix>``: the same for every attempt of one job, a valid git ref."""
    job_part = re.sub(r"[^a-z0-9]", "", job_id.lower())[:8]
    if not job_part:
        raise ValueError(f"job id {job_id!r} has no letters or digits to name a branch after")
    return f"kaizen/{_slug(task_name)}/{job_part}"


def pr_title(task_name: str, baseline: float, optimized: float) -> str:
    """``kaizen: improve <task> prompt (0.62 → 0.78)``; pass the export re-score as ``optimized``."""
    task = task_name if len(task_name) <= _TITLE_TASK_CHARS else task_name[: _TITLE_TASK_CHARS - 1] + "…"
    return f"kaizen: improve {task} prompt ({baseline:.2f} → {optimized:.2f})"


def pr_body(content: PrContent, *, max_examples: int = 3) -> str:
    """The markdown body of the PR/MR, ending with the hidden job marker."""
    sections = [
        _summary(content),
        _scores(content),
        _run(content),
        _examples(content.examples[:max_examples], len(content.examples)),
        _rollback(content),
        _MARKER.format(job_id=content.job_id),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def job_id_from_body(body: str) -> str | None:
    """The job id of the marker that ends a body written by :func:`pr_body`, if any."""
    match = _MARKER_AT_END.search(body)
    return match.group(1) if match else None


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:40].rstrip("-") or "task"


def _summary(content: PrContent) -> str:
    return (
        f"## Kaizen: a better prompt for {_code(content.task_name)}\n\n"
        f"Kaizen optimized the prompt in {_code(content.prompt_path)} from scored feedback. "
        f"All scores below are on the same {content.val_size} validation examples."
    )


def _scores(content: PrContent) -> str:
    rows = [
        "| Prompt | Score |",
        "|---|---|",
        f"| Current prompt (baseline) | {content.baseline_score:.3f} |",
        f"| Optimized program (inside DSPy) | {content.optimized_score:.3f} |",
    ]
    if content.export_score is None:
        rows.append("| This file's prompt, re-scored as the app calls it | not measured |")
    else:
        delta = content.export_score - content.baseline_score
        rows.append(
            f"| **This file's prompt, re-scored as the app calls it** | **{content.export_score:.3f}** "
            f"({delta:+.3f}) |"
        )
    if (
        content.test_size
        and content.test_baseline_score is not None
        and content.test_export_score is not None
    ):
        delta = content.test_export_score - content.test_baseline_score
        rows.append(
            f"| Held-out test ({content.test_size} examples no step of the job saw): current → this file | "
            f"{content.test_baseline_score:.3f} → **{content.test_export_score:.3f}** ({delta:+.3f}) |"
        )
    return "### Scores\n\n" + "\n".join(rows)


def _code(text: str) -> str:
    # Inline code cannot hold a backtick; names rarely contain one, so drop it.
    return "`" + text.replace("`", "'") + "`"


def _run(content: PrContent) -> str:
    if content.cost_usd is None:
        cost = "not metered"
    else:
        cost = f"${content.cost_usd:.4f}" if 0 < content.cost_usd < 0.01 else f"${content.cost_usd:.2f}"
    lines = [
        f"- Job: `{content.job_id}`",
        f"- Data: {content.train_size} training / {content.val_size} validation examples",
        f"- Trials: {content.trials} · LLM calls: {content.llm_calls} · Cost: {cost}",
    ]
    if content.metric:
        lines.append(f"- Metric: {content.metric}")
    if content.prompt_contract:
        lines.append(f"- Prompt contract: {content.prompt_contract} (how the application calls the model)")
    if content.prompt_version_id:
        lines.append(f"- Prompt version: `{content.prompt_version_id}`")
    return "### Run\n\n" + "\n".join(lines)


def _examples(examples: tuple[PrExample, ...], total: int) -> str:
    if not examples:
        return ""
    parts = [f"### Examples ({len(examples)} of {total})"]
    for number, example in enumerate(examples, 1):
        inputs = "\n".join(f"{name}: {value}" for name, value in example.inputs)
        parts.append(
            f"<details><summary>Example {number}</summary>\n\n"
            f"**Input**\n\n{_fenced(inputs)}\n\n"
            f"**Before**\n\n{_fenced(example.old_output)}\n\n"
            f"**After**\n\n{_fenced(example.new_output)}\n\n</details>"
        )
    return "\n\n".join(parts)


def _fenced(text: str) -> str:
    if len(text) > _EXAMPLE_CHARS:
        text = text[:_EXAMPLE_CHARS] + f"… ({len(text) - _EXAMPLE_CHARS} more characters)"
    # A fence longer than any backtick run inside keeps user text from closing it.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _rollback(content: PrContent) -> str:
    lines = [
        "### Rolling back",
        "",
        "- Before merging: close this PR; nothing changes.",
        "- After merging: revert this PR (the *Revert* button, or `git revert` of the merge commit).",
    ]
    if content.previous_version_id:
        lines.append(f"- In Kaizen: activate the previous prompt version `{content.previous_version_id}`.")
    else:
        lines.append("- In Kaizen: activate the task's previous prompt version.")
    return "\n".join(lines)


# --- importing the prompt the application runs today ---------------------------------------

#: Settings saying where the prompt file is or how to reach it: changing one re-reads the file.
IMPORT_SETTINGS = frozenset(
    {
        "git_provider",
        "git_base_url",
        "git_repo",
        "git_base_branch",
        "git_token_encrypted",
        "prompt_path",
        "prompt_format",
        "prompt_locator",
    }
)
_IMPORT_NEEDS = ("git_provider", "git_repo", "git_token_encrypted", "prompt_path")


def wants_import(settings: Mapping[str, Any], changed: Iterable[str] | None = None) -> bool:
    """Whether to read the task's prompt file: it is reachable (provider, repo, token, path set)
    and the task is new (``changed`` None) or ``changed`` names one of :data:`IMPORT_SETTINGS`."""
    if not all(settings.get(name) for name in _IMPORT_NEEDS):
        return False
    return changed is None or not IMPORT_SETTINGS.isdisjoint(changed)


def decide_import(
    task_id: uuid.UUID,
    request_id: str,
    settings: Mapping[str, Any],
    *,
    prompt: str,
    branch: str,
    blob_sha: str,
    active_prompt: str | None,
) -> list[Event]:
    """The events of one import of the prompt read from ``branch`` (file version ``blob_sha``).

    A prompt invalid under the task's contract activates nothing (``failed``); one equal to
    the active prompt changes nothing (``unchanged``); otherwise it becomes a new version,
    activated at once. Its id is derived from the task, the file version and the request, so
    a redelivered request re-emits the same events (consumers dedupe), while the same file
    imported again by a later change, after another version was activated, is a new draft
    that can be activated (an archived version cannot be).
    """
    path = str(settings["prompt_path"])
    contract = settings.get("prompt_contract", "system")
    where = {"task_id": task_id, "prompt_path": path, "branch": branch, "blob_sha": blob_sha}
    try:
        parse_prompt(contract, prompt, input_field_names(settings.get("input_schema")))
    except PromptContractError as exc:
        reason = (
            f"the prompt in {path} on branch {branch} is not a valid {contract!r} prompt ({exc}); "
            "fix the file, or the task's prompt_contract, prompt_format or prompt_locator"
        )
        return [PromptImportAttempted(**where, outcome="failed", reason=reason)]
    if prompt == active_prompt:
        return [PromptImportAttempted(**where, outcome="unchanged")]
    version_id = derive_id("repository-prompt-version", task_id, blob_sha, request_id)
    return [
        PromptVersionCreated(
            prompt_version_id=version_id,
            task_id=task_id,
            job_id=None,
            prompt_text=prompt,
            source="repository",
            optimizer="none",
        ),
        PromptActivated(task_id=task_id, prompt_version_id=version_id),
        PromptImportAttempted(**where, outcome="imported", prompt_version_id=version_id),
    ]


def import_failed(
    task_id: uuid.UUID, settings: Mapping[str, Any], reason: str, *, retryable: bool
) -> PromptImportAttempted:
    """The outcome of an import that could not read the file: nothing is activated."""
    return PromptImportAttempted(
        task_id=task_id,
        outcome="failed",
        prompt_path=str(settings.get("prompt_path") or ""),
        branch=settings.get("git_base_branch"),
        reason=reason,
        retryable=retryable,
    )
