"""A 1 GB anonymous POST against a real API process: 413, and the process's memory stays flat.

The body is streamed from a generator (the test never holds it) to ``python -m
services.api`` on a real port; the API's resident memory is read from ``/proc``.

The client reads the answer while it sends, as curl does (``tests/support/early_answer.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.early_answer import post_reading_early
from tests.support.live import live_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GIB = 2**30
CHUNK = b"x" * 2**20
MAX_GROWTH_KIB = 50 * 1024


def _gigabyte() -> Iterator[bytes]:
    for _ in range(GIB // len(CHUNK)):
        yield CHUNK


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def test_a_gigabyte_without_a_key_is_413_and_the_api_does_not_grow(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with live_system(kafka_bootstrap, tmp_path / "home", services=("projector", "api")) as live:
        pid = live.processes["api"].pid
        before = _rss_kib(pid)
        url = f"{live.api_url}/api/v1/feedback"
        json_type = {"Content-Type": "application/json"}
        chunked = post_reading_early(url, _gigabyte(), {**json_type, "Transfer-Encoding": "chunked"})
        declared = post_reading_early(url, _gigabyte(), {**json_type, "Content-Length": str(GIB)})
        after = _rss_kib(pid)
        print(f"API VmRSS before {before} KiB, after {after} KiB, peak {_rss_kib(pid, 'VmHWM')} KiB")
        for status, headers, body in (chunked, declared):
            assert status == 413, body
            assert headers["content-type"] == "application/problem+json"
            assert json.loads(body)["type"] == "urn:kaizen:problem:body-too-large"
        assert after - before < MAX_GROWTH_KIB
        # The API still serves, and the key check still applies to a body of ordinary size.
        assert live.request("POST", "/api/v1/feedback", {"output": "x"}, key=None)[0] == 401
