"""The projector's fold of task and feedback events: the task rows and their feedback.

Tasks and feedback share a module because live feedback moves its task's counters (all
of it, and how much since the last job's cut-off), which the API shows as the task's
progress towards its threshold.
Task requests are judged by :mod:`shared.decisions`, as the optimizer and the PR
publisher judge them (docs/adr/0006-decide-once.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.projector.outcomes import outcome, rejected
from shared.decisions import TaskLife, decide_task_created, decide_task_deleted, decide_task_updated
from shared.events import feedback as fb
from shared.events import tasks as tk

if TYPE_CHECKING:
    from services.projector.handlers import Fact
    from services.projector.view import Row, View, Wanted


def want_task(w: Wanted, f: Fact, e: tk.TaskCreated | tk.TaskUpdated | tk.TaskDeleted) -> None:
    w.task_ids.add(str(e.task_id))


def want_feedback(w: Wanted, f: Fact, e: fb.FeedbackRecorded) -> None:
    if e.source != "seed":
        # Live feedback counts on its task's row once: is it new, and past the cut-off?
        w.task_ids.add(str(e.task_id))
        w.feedback_ids.add(str(e.feedback_id))


def _task_life(row: Row | None) -> TaskLife:
    if row is None:
        return TaskLife.ABSENT
    return TaskLife.DELETED if row["deleted"] else TaskLife.LIVE


def on_task_created(view: View, f: Fact, e: tk.TaskCreated) -> None:
    # Racing creates of one name derive the same task id (name + generation), so they
    # meet on one partition and the first wins. A check across tasks would depend on
    # the order partitions are read in, and replay would not be exact.
    verdict = decide_task_created(_task_life(view.tasks.get(str(e.task_id))), e.name)
    if verdict.rejected:
        rejected(view, f, e.task_id, verdict)
        return
    settings = e.model_dump(mode="json", exclude={"task_id", "request_id", "git_token_encrypted"})
    view.tasks.insert(
        {
            "id": str(e.task_id),
            "name": e.name,
            "name_key": e.name.strip().casefold(),
            "settings": settings,
            "git_token_encrypted": e.git_token_encrypted,
            "deleted": False,
            "created_at": f.time,
            "updated_at": f.time,
            "last_job_cutoff": -1,
            "live_feedback": 0,
            "live_since_cutoff": 0,
        }
    )
    # Feedback may have been stored before its task existed; it counts from now on.
    view.feedback_counts.recount_all.add(str(e.task_id))
    outcome(view, f, "accepted", e.task_id)


def on_task_updated(view: View, f: Fact, e: tk.TaskUpdated) -> None:
    row = view.tasks.get(str(e.task_id))
    verdict = decide_task_updated(_task_life(row))
    if verdict.rejected or row is None:
        rejected(view, f, e.task_id, verdict)
        return
    changes = dict(e.changes)
    values: dict[str, Any] = {"updated_at": f.time}
    if "git_token_encrypted" in changes:
        values["git_token_encrypted"] = changes.pop("git_token_encrypted")
    if "name" in changes:
        values["name"] = changes["name"]
        values["name_key"] = str(changes["name"]).strip().casefold()
    values["settings"] = {**row["settings"], **changes}
    view.tasks.update((str(e.task_id),), **values)
    outcome(view, f, "accepted", e.task_id)


def on_task_deleted(view: View, f: Fact, e: tk.TaskDeleted) -> None:
    # No outcome row: the API does not wait on a deletion (it checked the task exists). A
    # second deletion changes nothing, not even ``updated_at``.
    if decide_task_deleted(_task_life(view.tasks.get(str(e.task_id)))).accepted:
        view.tasks.update((str(e.task_id),), deleted=True, updated_at=f.time)


def on_feedback(view: View, f: Fact, e: fb.FeedbackRecorded) -> None:
    task_id = str(e.task_id)
    feedback_id = str(e.feedback_id)
    # Only a new id counts, and on a task that exists (one created later is counted then).
    live = e.source != "seed" and view.feedback.is_new(feedback_id)
    if live and (task := view.tasks.get(task_id)) is not None:
        view.feedback_counts.add(task_id, after_cutoff=f.offset > task["last_job_cutoff"])
    view.feedback.add(
        {
            "id": feedback_id,
            "task_id": task_id,
            "inputs": e.inputs,
            "output": e.output,
            "score": e.score,
            "source": e.source,
            "metadata": e.metadata,
            "created_at": f.envelope.time,
            "log_offset": f.offset,
        }
    )


def on_seeds(view: View, f: Fact, e: fb.SeedsUploaded) -> None:
    for seed in e.seeds:
        view.feedback.add(
            {
                "id": str(seed.feedback_id),
                "task_id": str(e.task_id),
                "inputs": seed.inputs,
                "output": seed.output,
                "score": seed.score,
                "source": "seed",
                "metadata": seed.metadata,
                "created_at": f.time,
                "log_offset": f.offset,
            }
        )
