"""``kaizen feedback import``'s file handling and ``jobs watch``'s state: pure, no server."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from kaizen_client import models as m

from kaizen_cli import feedback_file as ff
from kaizen_cli.job_watch import Watched

TASK = str(uuid.uuid4())


def jsonl(*rows: object) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def row(n: int) -> dict[str, object]:
    return {"inputs": {"ticket": f"t{n}"}, "output": "finance", "score": 0.9}


def test_jsonl_rows_keep_their_line_numbers_and_bad_lines_are_refused_with_theirs() -> None:
    data = jsonl(row(1), "", "{not json", row(2), "[1, 2]", {"inputs": {}, "output": "x", "score": "high"})
    rows, refused = ff.parse(data, "jsonl", TASK, None)
    assert [r.line for r in rows] == [1, 4]
    assert all(str(r.item.task_id) == TASK for r in rows)
    assert [(r.line, r.reason.split(":")[0]) for r in refused] == [
        (3, "not JSON"),
        (5, "not a JSON object"),
        (6, "score"),
    ]


def test_a_row_without_a_task_is_refused_when_no_task_is_given() -> None:
    data = jsonl(row(1), {**row(2), "task_id": TASK})
    rows, refused = ff.parse(data, "jsonl", None, None)
    assert [r.line for r in rows] == [2]
    assert refused == [ff.Refusal(1, "no task_id (give the task with --task)")]


def test_csv_columns_other_than_the_reserved_ones_are_inputs_and_lines_count_quoted_newlines() -> None:
    data = (
        b'ticket,customer,output,score,metadata\n"two\nlines",acme,finance,0.5,"{""n"": 1}"\n'
        b"plain,acme,it,high,\n"
        b"x,y,it,1,\n"
    )
    rows, refused = ff.parse(data, "csv", TASK, "user_rating")
    assert [r.line for r in rows] == [2, 5]
    first = rows[0].item
    assert first.inputs == {"ticket": "two\nlines", "customer": "acme"}
    assert (first.output, first.score, first.metadata) == ("finance", 0.5, {"n": 1})
    assert first.source == "user_rating"
    assert refused == [ff.Refusal(4, "score 'high' is not a number")]


def test_chunks_are_bounded_and_their_keys_depend_only_on_content_options_and_index() -> None:
    data = jsonl(*(row(n) for n in range(12)))
    rows, _ = ff.parse(data, "jsonl", TASK, None)
    chunks = ff.chunks(rows, data, TASK, None, 5)
    assert [len(c.rows) for c in chunks] == [5, 5, 2]
    assert [c.index for c in chunks] == [0, 1, 2]
    assert len({c.key for c in chunks}) == 3
    again = ff.chunks(*ff.parse(data, "jsonl", TASK, None)[:1], data, TASK, None, 5)
    assert [c.key for c in again] == [c.key for c in chunks]
    other_task = ff.chunks(rows, data, str(uuid.uuid4()), None, 5)
    other_content = ff.chunks(rows, data + b"\n", TASK, None, 5)
    assert not {c.key for c in other_task} & {c.key for c in chunks}
    assert not {c.key for c in other_content} & {c.key for c in chunks}
    assert all(len(c.key) <= 255 and c.key.isascii() for c in chunks)


def test_a_chunk_is_cut_before_it_outgrows_the_request_size_limit() -> None:
    big = {"inputs": {"ticket": "x" * 200_000}, "output": "finance", "score": 1.0}
    data = jsonl(*([big] * 9))
    rows, _ = ff.parse(data, "jsonl", TASK, None)
    chunks = ff.chunks(rows, data, TASK, None, 500)
    assert [len(c.rows) for c in chunks] == [4, 4, 1]


def test_only_known_extensions_are_read() -> None:
    assert ff.file_format("a.JSONL") == "jsonl" and ff.file_format("b.csv") == "csv"
    try:
        ff.file_format("c.json")
    except ff.UnknownFormat:
        return
    raise AssertionError("a .json file was accepted")


def event(kind: str, **data: object) -> m.JobEvent:
    return m.JobEvent(
        type=f"kaizen.job.{kind}.v1",
        time=datetime.now(UTC),
        source="optimizer",
        data=data,
        correlation_id=None,
        causation_id=None,
        offset=1,
    )


def test_the_watched_state_keeps_the_last_trial_and_the_best_score_so_far() -> None:
    state = Watched()
    state.on_event(event("compiling", baseline_score=0.4))
    state.on_event(event("trial_completed", trial=1, total_trials=6, score=0.5, best_score=0.5))
    state.on_event(event("trial_completed", trial=2, total_trials=6, score=0.45, best_score=0.5))
    assert (state.trial, state.total_trials, state.best_score, state.baseline_score) == (2, 6, 0.5, 0.4)
    assert "trial 2/6" in state.line() and "best 0.500" in state.line()
