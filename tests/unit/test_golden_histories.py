"""Golden event histories, frozen as written, still decode and replay with today's code.

``tests/fixtures/histories/*.jsonl`` hold record values exactly as a version of Kaizen
wrote them, one a line. ``two-jobs.envelope-v1.jsonl`` is what the encoder wrote before
the CloudEvents-conforming attribute names (``task_id`` …, nulls included);
``two-jobs.envelope-v2.jsonl`` is the same history as written today (``taskid`` …, with a
``traceparent``). Never regenerate a golden file to make a test pass: an old record that
no longer decodes is the bug.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.projector.handlers import Fact, evolve
from services.projector.view import View
from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.upcasters import is_envelope_v1

HISTORIES = Path(__file__).resolve().parents[1] / "fixtures" / "histories"
GOLDEN = sorted(HISTORIES.glob("*.jsonl"))
V1 = HISTORIES / "two-jobs.envelope-v1.jsonl"
V2 = HISTORIES / "two-jobs.envelope-v2.jsonl"


def records(path: Path) -> list[bytes]:
    return [line.encode() for line in path.read_text().splitlines() if line.strip()]


def replay(path: Path) -> View:
    view = View()
    view.all_keys = True  # a fresh read model: every key (none) is loaded
    for offset, value in enumerate(records(path)):
        evolve(view, Fact(codec.decode(value), "tasks", 0, offset))
    return view


def test_there_is_a_golden_history_of_each_envelope_layout() -> None:
    layouts = {is_envelope_v1(json.loads(r)) for path in GOLDEN for r in records(path)}
    assert layouts == {True, False}


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_every_record_of_a_golden_history_decodes(path: Path) -> None:
    envelopes = [codec.decode(value) for value in records(path)]
    assert len({e.id for e in envelopes}) == len(envelopes) > 0


def test_a_v1_record_decodes_to_the_event_its_v2_twin_holds() -> None:
    old = [codec.decode(r) for r in records(V1)]
    new = [codec.decode(r) for r in records(V2)]
    assert all(e.traceparent for e in new)
    assert old == [e.model_copy(update={"traceparent": None}) for e in new]


def test_a_decoded_v1_record_is_written_back_in_the_v2_layout() -> None:
    for old, new in zip(records(V1), records(V2), strict=True):
        twin = codec.decode(new)
        upgraded = codec.decode(old).model_copy(update={"traceparent": twin.traceparent})
        assert codec.encode(upgraded) == new


def test_the_v1_records_kept_every_id_in_the_attributes() -> None:
    first_job = [codec.decode(r) for r in records(V1) if b"kaizen.job." in r or b"kaizen.pr." in r]
    assert all(e.task_id is not None and e.job_id is not None for e in first_job)
    assert all(e.correlation_id == str(e.job_id) for e in first_job)
    assert [e.causation_id is None for e in first_job].count(True) == 2  # each job's JobRequested


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_a_golden_history_replays_to_the_same_read_model(path: Path) -> None:
    view = replay(path)
    jobs = sorted(view.jobs.rows.values(), key=lambda r: str(r["status"]))
    assert [(r["status"], r["pr_url"]) for r in jobs] == [
        ("FAILED", None),
        ("SUCCESS", "http://git.test/o/r/pull/1"),
    ]
    [task] = view.tasks.rows.values()
    assert task["name"] == "golden-task"
    history = view.job_events.rows.values()
    assert {r["correlation_id"] for r in history} == {str(r["id"]) for r in jobs}
    assert sum(r["causation_id"] is None for r in history) == 2


def test_both_layouts_replay_to_identical_rows() -> None:
    def rows(view: View) -> dict[str, list[dict[str, object]]]:
        return {
            name: sorted((dict(r) for r in getattr(view, name).rows.values()), key=repr)
            for name in ("tasks", "jobs", "job_events", "prompt_versions", "api_keys")
        }

    assert rows(replay(V1)) == rows(replay(V2))


def test_an_envelope_mixing_both_layouts_is_poison() -> None:
    raw = json.loads(records(V1)[1])
    raw["taskid"] = raw["task_id"]
    with pytest.raises(codec.PoisonRecord, match="mixes envelope v1 and v2"):
        codec.decode(json.dumps(raw).encode())


def test_the_partition_key_attribute_is_the_record_key() -> None:
    for value in records(V2):
        envelope: Envelope = codec.decode(value)
        assert json.loads(value)["partitionkey"].encode() == envelope.key
