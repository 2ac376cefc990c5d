"""A 1 GB anonymous POST against a real API process: 413, and the process's memory stays flat.

The body is streamed from a generator (the test never holds it) to ``python -m
services.api`` on a real port; the API's resident memory is read from ``/proc``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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
        with httpx.Client(timeout=120) as client:
            chunked = client.post(url, content=_gigabyte(), headers={"Content-Type": "application/json"})
            declared = client.post(
                url,
                content=_gigabyte(),
                headers={"Content-Type": "application/json", "Content-Length": str(GIB)},
            )
        after = _rss_kib(pid)
        print(f"API VmRSS before {before} KiB, after {after} KiB, peak {_rss_kib(pid, 'VmHWM')} KiB")
        for response in (chunked, declared):
            assert response.status_code == 413, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "urn:kaizen:problem:body-too-large"
        assert after - before < MAX_GROWTH_KIB
        # The API still serves, and the key check still applies to a body of ordinary size.
        assert live.request("POST", "/api/v1/feedback", {"output": "x"}, key=None)[0] == 401
