"""The trigger's decisions: pure functions over one task's state, no I/O.

``decide_*`` return the events to emit; ``evolve`` folds any event into the state. The
optimizer applies its own decisions to the state at once (so a second feedback right
behind the crossing one cannot trigger again), and folding the emitted event when it
comes back through the log is then a no-op.

The auto-trigger rule (docs/triggers.md): a task triggers when the live feedback
recorded after its last job's cut-off reaches ``feedback_threshold`` and no job of the
task is active. Every job — successful or not — moves the cut-off, so after a FAILED
or PR_FAILED job another full threshold of new feedback is needed.

Whether a task or prompt-version request takes effect is judged by :mod:`shared.decisions`,
the functions the projector and the PR publisher use too (docs/adr/0006-decide-once.md);
``TaskState`` keeps what those verdicts need (the task's life, its versions' statuses) and
``accepted_at`` tells the handlers whether the request just folded took effect.

Each feedback id counts once (:func:`first_sightings`): an API retry after a 503/504
whose write had landed can append the same ``FeedbackRecorded`` or ``SeedsUploaded``
again, and the copy must move neither the threshold nor a job's ``feedback_count``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from shared import decisions
from shared.decisions import TaskLife, VersionStatus
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events import prompts, prs
from shared.events import tasks as tk
from shared.events.base import Event, derive_id


@dataclass(frozen=True)
class TaskState:
    task_id: uuid.UUID
    exists: bool = False
    threshold: int = 50
    live_since_cutoff: int = 0
    examples: int = 0
    active_job: uuid.UUID | None = None
    #: True once the task was deleted (``exists`` is then False): it is never created again.
    deleted: bool = False
    #: The offset of the last request (task or prompt version) that took effect; a handler
    #: compares it with its event's offset to know whether to act. -1: none yet.
    accepted_at: int = -1
    #: The status of each prompt version of the task (version id → draft | active | archived).
    versions: dict[str, VersionStatus] = field(default_factory=dict)


def task_life(state: TaskState) -> TaskLife:
    if state.exists:
        return TaskLife.LIVE
    return TaskLife.DELETED if state.deleted else TaskLife.ABSENT


def version_status(state: TaskState, version_id: uuid.UUID) -> VersionStatus | None:
    return state.versions.get(str(version_id))


def evolve(state: TaskState, event: Event, offset: int) -> TaskState:
    """The state after ``event`` (at ``offset`` in the task's partition)."""
    match event:
        case tk.TaskCreated() | tk.TaskUpdated() | tk.TaskDeleted():
            return _evolve_task(state, event, offset)
        case prompts.PromptVersionCreated() | prompts.PromptActivated():
            return _evolve_versions(state, event, offset)
        case fb.FeedbackRecorded(source=source):
            live = 0 if source == "seed" else 1
            return replace(
                state, live_since_cutoff=state.live_since_cutoff + live, examples=state.examples + 1
            )
        case fb.SeedsUploaded(seeds=seeds):
            return replace(state, examples=state.examples + len(seeds))
        case jb.JobRequested(job_id=job_id) if state.active_job != job_id:
            return replace(state, active_job=job_id, live_since_cutoff=0)
        case jb.JobSucceeded(job_id=job_id) | jb.JobFailed(job_id=job_id) if state.active_job == job_id:
            return replace(state, active_job=None)
        case prs.PrCreated(job_id=job_id) | prs.PrFailed(job_id=job_id) if state.active_job == job_id:
            return replace(state, active_job=None)
    return state


def _evolve_task(state: TaskState, event: Event, offset: int) -> TaskState:
    life = task_life(state)
    match event:
        case tk.TaskCreated() if decisions.decide_task_created(life, event.name).accepted:
            return replace(state, exists=True, threshold=event.feedback_threshold, accepted_at=offset)
        case tk.TaskUpdated(changes=changes) if decisions.decide_task_updated(life).accepted:
            threshold = int(changes.get("feedback_threshold", state.threshold))
            return replace(state, threshold=threshold, accepted_at=offset)
        case tk.TaskDeleted() if decisions.decide_task_deleted(life).accepted:
            return replace(state, exists=False, deleted=True, accepted_at=offset)
    return state


def _evolve_versions(state: TaskState, event: Event, offset: int) -> TaskState:
    match event:
        case prompts.PromptVersionCreated(prompt_version_id=version_id):
            if decisions.decide_version_created(str(version_id) in state.versions).accepted:
                versions: dict[str, VersionStatus] = {**state.versions, str(version_id): "draft"}
                return replace(state, versions=versions, accepted_at=offset)
        case prompts.PromptActivated(prompt_version_id=version_id):
            if decisions.decide_prompt_activated(version_status(state, version_id)).accepted:
                archived = {k: "archived" if v == "active" else v for k, v in state.versions.items()}
                return replace(state, versions={**archived, str(version_id): "active"}, accepted_at=offset)
    return state


def recorded_ids(event: Event) -> list[uuid.UUID]:
    """The feedback ids ``event`` records (none for events that record no feedback)."""
    match event:
        case fb.FeedbackRecorded(feedback_id=feedback_id):
            return [feedback_id]
        case fb.SeedsUploaded(seeds=seeds):
            return [seed.feedback_id for seed in seeds]
    return []


def first_sightings(event: Event, first_offsets: Mapping[uuid.UUID, int], offset: int) -> Event | None:
    """``event`` without the feedback it repeats: None when it only repeats earlier feedback.

    ``first_offsets`` maps feedback ids of the task to the offset of the event that first
    recorded them (the optimizer keeps every example, keyed by id, for training anyway).
    An id first recorded at an earlier offset is a copy. Deciding by offset, not by "seen
    before", keeps replay exact: a rebuild from the log, with or without the examples of an
    earlier fold, counts the same events, and a redelivered batch is counted as before.
    There is no window to outgrow: a copy is recognised however late it comes.
    """
    match event:
        case fb.FeedbackRecorded(feedback_id=feedback_id):
            return None if first_offsets.get(feedback_id, offset) < offset else event
        case fb.SeedsUploaded(seeds=seeds):
            fresh = [s for s in seeds if first_offsets.get(s.feedback_id, offset) >= offset]
            if not fresh:
                return None
            return event if len(fresh) == len(seeds) else event.model_copy(update={"seeds": fresh})
    return event


def decide_on_feedback(state: TaskState, offset: int) -> list[Event]:
    """After live feedback (or a job's end): request a job if the threshold is reached."""
    if not state.exists or state.active_job is not None or state.live_since_cutoff < state.threshold:
        return []
    return [
        jb.JobRequested(
            job_id=derive_id("auto-job", state.task_id, offset),
            task_id=state.task_id,
            triggered_by="auto_threshold",
            feedback_count=state.examples,
            log_offset=offset,
        )
    ]


def decide_on_request(state: TaskState, request: jb.OptimizationRequested, offset: int) -> list[Event]:
    """An optimize request: a job, or a rejection saying why."""
    ids = {"task_id": request.task_id, "job_id": request.job_id}
    if not state.exists:
        return [jb.OptimizationRejected(**ids, reason="task_missing", detail="the task does not exist")]
    if state.active_job is not None:
        detail = f"job {state.active_job} of this task is still active; wait for it to finish or cancel it"
        return [
            jb.OptimizationRejected(**ids, reason="job_active", detail=detail, active_job_id=state.active_job)
        ]
    if state.examples == 0:
        detail = "the task has no feedback or seeds yet; send feedback or upload seeds first"
        return [jb.OptimizationRejected(**ids, reason="no_usable_feedback", detail=detail)]
    return [
        jb.JobRequested(**ids, triggered_by="api_on_demand", feedback_count=state.examples, log_offset=offset)
    ]


def ends_job(event: Event) -> bool:
    return isinstance(event, (jb.JobSucceeded, jb.JobFailed, prs.PrCreated, prs.PrFailed))
