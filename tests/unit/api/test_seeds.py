"""Parsing seed uploads."""

from __future__ import annotations

import json

import pytest

from services.api.seeds import MAX_REPORTED_ERRORS, SeedFileError, in_parts, parse_seeds


def _jsonl(*items: object) -> bytes:
    return "\n".join(json.dumps(i) if not isinstance(i, str) else i for i in items).encode()


def test_valid_lines_become_seeds_with_defaults_and_blank_lines_are_skipped() -> None:
    data = _jsonl(
        {"inputs": {"ticket": "a"}, "output": "A"},
        "",
        {"inputs": {"ticket": "b"}, "output": "B", "score": 0.5},
    )
    parsed = parse_seeds(data, ["ticket"], room=10, limit=10)
    assert [(s.output, s.score) for s in parsed.seeds] == [("A", 1.0), ("B", 0.5)]
    assert parsed.rejected == 0 and parsed.errors == []
    assert len({s.feedback_id for s in parsed.seeds}) == 2


def test_bad_lines_are_reported_by_line_number_in_plain_words() -> None:
    data = _jsonl(
        "{not json",
        [1, 2],
        {"inputs": {"ticket": "a"}},
        {"inputs": {"other": "a"}, "output": "x"},
        {"inputs": {"ticket": "a"}, "output": "x", "score": 2},
        {"inputs": {"ticket": "a"}, "output": "ok"},
    )
    parsed = parse_seeds(data, ["ticket"], room=10, limit=10)
    assert len(parsed.seeds) == 1 and parsed.rejected == 5
    assert [e["line"] for e in parsed.errors] == [1, 2, 3, 4, 5]
    messages = [e["message"] for e in parsed.errors]
    assert messages[0].startswith("not valid JSON")
    assert messages[1] == "must be a JSON object"
    assert messages[2] == "output: is required"
    assert "inputs.ticket: is required by the task's schema" in messages[3]
    assert messages[4] == "score: must be at most 1"


def test_only_the_first_errors_are_listed_but_all_are_counted() -> None:
    parsed = parse_seeds(_jsonl(*["{"] * 30), None, room=10, limit=10)
    assert parsed.rejected == 30 and len(parsed.errors) == MAX_REPORTED_ERRORS


def test_lines_beyond_the_remaining_room_are_rejected() -> None:
    data = _jsonl(*[{"inputs": {"t": str(i)}, "output": "x"} for i in range(5)])
    parsed = parse_seeds(data, None, room=3, limit=5000)
    assert len(parsed.seeds) == 3 and parsed.rejected == 2
    assert parsed.errors[0] == {"line": 4, "message": "the task's seed limit of 5000 is reached"}


@pytest.mark.parametrize(
    ("data", "message"), [(b"", "empty"), (b"\n \n", "empty"), (b"\xff\xfe{", "not UTF-8")]
)
def test_unusable_files_are_refused_as_a_whole(data: bytes, message: str) -> None:
    with pytest.raises(SeedFileError, match=message):
        parse_seeds(data, None, room=10, limit=10)


def test_parts_hold_at_most_200_seeds_and_about_512_kib() -> None:
    small = parse_seeds(
        _jsonl(*[{"inputs": {"t": "x"}, "output": "y"} for _ in range(450)]), None, 5000, 5000
    )
    assert [len(p) for p in in_parts(small.seeds)] == [200, 200, 50]
    big = parse_seeds(
        _jsonl(*[{"inputs": {"t": "x" * 100_000}, "output": "y"} for _ in range(12)]), None, 50, 50
    )
    parts = in_parts(big.seeds)
    assert sum(len(p) for p in parts) == 12
    assert all(sum(len(s.model_dump_json()) for s in p) <= 512 * 1024 for p in parts)
