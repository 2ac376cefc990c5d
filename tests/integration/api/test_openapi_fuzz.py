"""Schemathesis over the live API's ``/openapi.json``: no 5xx, and every answer as documented.

The API runs on a real port in front of a real broker, the projector and a SQLite read
model; ``schemathesis run`` drives it from another process with an admin key through every
phase (examples, coverage, fuzzing, stateful) and every check, with deterministic
generation so a failure reproduces. ``schemathesis.toml`` beside this file holds the
settings and the few exceptions, each with its reason. On failure the assertion shows
schemathesis's report, with a ``curl`` line per failing case.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.integration.api.conftest import MakeApi

# About two minutes on an idle two-core machine (the coverage phase alone is a minute): slow.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_every_route_survives_openapi_fuzzing(make_api: MakeApi, tmp_path: Path) -> None:
    async with make_api() as api, api.served() as url:
        process = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            f"--config-file={CONFIG}",
            "--no-color",
            "run",
            f"{url}/openapi.json",
            f"--header=X-API-Key: {api.key}",
            cwd=tmp_path,  # its reports and caches, if any, stay out of the repository
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
    report = out.decode(errors="replace")
    print(report)  # shown with -rP: the phases, their timings and the warnings of a passing run
    assert process.returncode == 0, report
