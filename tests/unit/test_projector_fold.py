"""The projector's fold without a database: a batch folds to what its events one by one give.

``Store`` is an in-memory read model that loads and writes a view as ``adapters`` does (the
same ``Wanted`` queries, upserts and insert-unless-present), so a batch's changes can be
compared with the changes of its events applied one at a time, each seeing the last.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.projector.handlers import Fact, evolve, wanted
from services.projector.view import Key, RefusedValue, Row, View, Wanted
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events import keys as ky
from shared.events import ops, prompts, prs
from shared.events import tasks as tk
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.readmodel import tables as t


class Store:
    """A read model in dicts: table name → key → row."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Key, Row]] = {table.name: {} for table in t.metadata.sorted_tables}

    def load(self, w: Wanted) -> View:
        view = View()
        keys = self.tables["api_keys"].values()
        ids = w.key_ids | w.key_hashes
        view.api_keys.seed(_copy(r for r in keys if w.all_keys or r["id"] in ids or r["key_hash"] in ids))
        view.all_keys = w.all_keys
        view.tasks.seed(_copy(r for r in self.tables["tasks"].values() if r["id"] in w.task_ids))
        view.jobs.seed(_copy(r for r in self.tables["jobs"].values() if r["id"] in w.job_ids))
        events = self.tables["job_events"]
        view.job_events.seed({"event_id": i} for i in w.event_ids if (i,) in events)
        versions = self.tables["prompt_versions"].values()
        view.prompt_versions.seed(
            _copy(
                r
                for r in versions
                if r["id"] in w.version_ids
                or (r["task_id"] in w.active_versions_of and r["status"] == "active")
            )
        )
        for r in versions:
            if r["task_id"] in w.numbers_of:
                view.last_version[r["task_id"]] = max(
                    view.last_version.get(r["task_id"], 0), r["version_number"]
                )
        return view

    def write(self, view: View) -> None:
        for change in view.changes():
            rows = self.tables[change.table.name]
            keys = [c.name for c in change.table.primary_key.columns]
            for row in change.upserts:
                rows[tuple(row[k] for k in keys)] = copy.deepcopy(row)
            for row in change.inserts:
                rows.setdefault(tuple(row[k] for k in keys), copy.deepcopy(row))

    def fold(self, facts: list[Fact]) -> None:
        view = self.load(wanted(facts))
        for fact in facts:
            evolve(view, fact)
        self.write(view)


def _copy(rows: Any) -> list[Row]:
    return [copy.deepcopy(r) for r in rows]


# --- a small world of ids, so events meet the same rows -----------------------------------

TASKS = [uuid.UUID(int=i) for i in range(1, 3)]
JOBS = [uuid.UUID(int=i) for i in range(10, 13)]
VERSIONS = [uuid.UUID(int=i) for i in range(20, 23)]
KEYS = [uuid.UUID(int=i) for i in range(30, 34)]
HASHES = [hashlib.sha256(bytes([i])).hexdigest() for i in range(3)]
REQUESTS = st.sampled_from(["r1", "r2", "r3", None])
T0 = datetime(2026, 1, 1, tzinfo=UTC)

task = st.sampled_from(TASKS)
job = st.sampled_from(JOBS)

EVENTS: st.SearchStrategy[Event] = st.one_of(
    st.builds(tk.TaskCreated, task_id=task, name=st.sampled_from(["a", "b"]), request_id=st.just("r")),
    st.builds(
        tk.TaskUpdated,
        task_id=task,
        changes=st.fixed_dictionaries({}, optional={"name": st.just("c"), "description": st.just("d")}),
    ),
    st.builds(tk.TaskDeleted, task_id=task),
    st.builds(
        fb.FeedbackRecorded,
        feedback_id=st.sampled_from([uuid.UUID(int=i) for i in range(40, 44)]),
        task_id=task,
        inputs=st.just({"x": 1}),
        output=st.sampled_from(["o", "p"]),
        score=st.just(0.5),
    ),
    st.builds(
        jb.JobRequested,
        job_id=job,
        task_id=task,
        triggered_by=st.just("api_on_demand"),
        feedback_count=st.integers(0, 9),
        log_offset=st.integers(0, 9),
    ),
    st.builds(
        jb.JobStarted,
        job_id=job,
        task_id=task,
        worker=st.just("w"),
        teacher_model=st.just("m"),
        judge_model=st.just("m"),
    ),
    st.builds(
        jb.JobEvaluating,
        job_id=job,
        task_id=task,
        feedback_count=st.integers(0, 9),
        seed_count=st.just(0),
        train_size=st.just(1),
        val_size=st.just(1),
        dataset_hash=st.just("h"),
    ),
    st.builds(jb.JobCompiling, job_id=job, task_id=task, baseline_score=st.just(0.5)),
    st.builds(jb.JobExporting, job_id=job, task_id=task, candidates=st.integers(0, 30)),
    st.builds(
        jb.JobTrialCompleted,
        job_id=job,
        task_id=task,
        trial=st.integers(1, 3),
        score=st.just(0.5),
        best_score=st.just(0.6),
    ),
    st.builds(
        jb.JobCompiled,
        job_id=job,
        task_id=task,
        prompt_version_id=st.sampled_from(VERSIONS),
        job_metadata=st.just({"k": 1}),
        publish=st.booleans(),
    ),
    st.builds(jb.JobSucceeded, job_id=job, task_id=task),
    st.builds(jb.JobFailed, job_id=job, task_id=task, error_message=st.just("e"), kind=st.just("k")),
    st.builds(jb.JobCancelRequested, job_id=job, task_id=task),
    st.builds(prs.PrRetryRequested, job_id=job, task_id=task),
    st.builds(
        prs.PrCreated, job_id=job, task_id=task, pr_url=st.just("u"), number=st.just(1), branch=st.just("b")
    ),
    st.builds(prs.PrFailed, job_id=job, task_id=task, reason=st.just("r"), retryable=st.booleans()),
    st.builds(
        prompts.PromptVersionCreated,
        prompt_version_id=st.sampled_from(VERSIONS),
        task_id=task,
        job_id=st.one_of(st.none(), job),
        prompt_text=st.just("p"),
    ),
    st.builds(prompts.PromptActivated, task_id=task, prompt_version_id=st.sampled_from(VERSIONS)),
    st.builds(
        ky.ApiKeyCreated,
        key_id=st.sampled_from(KEYS),
        name=st.just("k"),
        key_hash=st.sampled_from(HASHES),
        prefix=st.just("p"),
        bootstrap=st.booleans(),
        role=st.sampled_from(["admin", "read"]),
    ),
    st.builds(ky.ApiKeyRevoked, key_id=st.sampled_from(KEYS), keep_last_admin=st.booleans()),
    st.builds(
        ops.ServiceHeartbeat,
        service=st.just("s"),
        instance=st.sampled_from(["i1", "i2"]),
        pid=st.integers(1, 3),
    ),
)


@st.composite
def histories(draw: st.DrawFn) -> list[Fact]:
    """A log of events; some are redelivered (the same envelope again, later)."""
    facts: list[Fact] = []
    for offset in range(draw(st.integers(1, 40))):
        if facts and draw(st.integers(0, 9)) == 0:
            envelope = draw(st.sampled_from(facts)).envelope
        else:
            event = draw(EVENTS)
            envelope = Envelope.wrap(
                event,
                source="test",
                id=uuid.UUID(int=1000 + offset),
                correlation_id=draw(REQUESTS),
                time=T0 + timedelta(seconds=offset),
            )
        facts.append(Fact(envelope, "tasks", 0, offset))
    return facts


def one_by_one(facts: list[Fact]) -> Store:
    store = Store()
    for fact in facts:
        store.fold([fact])
    return store


@settings(max_examples=150, deadline=None)
@given(histories())
def test_folding_a_batch_at_once_equals_folding_its_events_one_by_one(facts: list[Fact]) -> None:
    batch = Store()
    batch.fold(facts)
    assert batch.tables == one_by_one(facts).tables


@settings(max_examples=100, deadline=None)
@given(histories(), st.lists(st.integers(1, 10), min_size=1, max_size=10))
def test_where_a_batch_ends_changes_nothing(facts: list[Fact], sizes: list[int]) -> None:
    chunked, start = Store(), 0
    while start < len(facts):
        size = sizes[start % len(sizes)]
        chunked.fold(facts[start : start + size])
        start += size
    assert chunked.tables == one_by_one(facts).tables


# --- the rules, one example each --------------------------------------------------------------


def fact(event: Event, offset: int = 0, request: str | None = None) -> Fact:
    envelope = Envelope.wrap(
        event, source="test", correlation_id=request, time=T0 + timedelta(seconds=offset)
    )
    return Fact(envelope, "tasks", 0, offset)


def test_the_first_create_of_a_task_wins_and_the_second_is_rejected() -> None:
    store = Store()
    store.fold(
        [
            fact(tk.TaskCreated(task_id=TASKS[0], name="first", request_id="a"), 0, "a"),
            fact(tk.TaskCreated(task_id=TASKS[0], name="second", request_id="b"), 1, "b"),
        ]
    )
    assert [r["name"] for r in store.tables["tasks"].values()] == ["first"]
    outcomes = store.tables["request_outcomes"]
    assert outcomes[("a",)]["outcome"] == "accepted"
    assert outcomes[("b",)]["reason"] == "duplicate_name"


def test_an_update_of_a_missing_task_is_rejected_and_changes_nothing() -> None:
    store = Store()
    store.fold([fact(tk.TaskUpdated(task_id=TASKS[0], changes={"name": "x"}), 0, "u")])
    assert store.tables["tasks"] == {}
    assert store.tables["request_outcomes"][("u",)]["reason"] == "task_missing"


def test_a_stage_event_after_the_end_never_revives_the_job() -> None:
    ids = {"job_id": JOBS[0], "task_id": TASKS[0]}
    store = Store()
    store.fold(
        [
            fact(jb.JobRequested(**ids, triggered_by="api_on_demand", feedback_count=1, log_offset=0), 0),
            fact(jb.JobFailed(**ids, error_message="e", kind="k"), 1),
            fact(jb.JobCompiling(**ids, baseline_score=0.5), 2),
        ]
    )
    assert store.tables["jobs"][(str(JOBS[0]),)]["status"] == "FAILED"
    assert len(store.tables["job_events"]) == 3  # the late event is in the history all the same


def test_a_null_that_a_later_event_overwrites_still_refuses_the_batch() -> None:
    """One by one, the first update would have failed (NOT NULL); the batch must fail too."""
    store = Store()
    store.fold([fact(tk.TaskCreated(task_id=TASKS[0], name="t", request_id="r"), 0)])
    view = store.load(Wanted(task_ids={str(TASKS[0])}))
    evolve(view, fact(tk.TaskUpdated(task_id=TASKS[0], changes={"name": None}), 1))
    evolve(view, fact(tk.TaskUpdated(task_id=TASKS[0], changes={"name": "u"}), 2))
    with pytest.raises(RefusedValue, match=r"tasks\.name"):
        view.changes()


def test_values_a_later_event_overwrites_are_kept_for_the_database_to_check() -> None:
    ids = {"job_id": JOBS[0], "task_id": TASKS[0]}
    view = View()
    evolve(
        view,
        fact(jb.JobRequested(**ids, triggered_by="api_on_demand", feedback_count=2**70, log_offset=0), 0),
    )
    evolve(view, fact(jb.JobStarted(**ids, worker="w", teacher_model="m", judge_model="m"), 1))
    evolve(
        view,
        fact(
            jb.JobEvaluating(
                **ids, feedback_count=3, seed_count=0, train_size=1, val_size=1, dataset_hash="h"
            ),
            2,
        ),
    )
    [jobs] = [c for c in view.changes() if c.table is t.jobs]
    assert [r["feedback_count"] for r in jobs.upserts] == [3]
    assert 2**70 in [r.get("feedback_count") for r in jobs.checks]
