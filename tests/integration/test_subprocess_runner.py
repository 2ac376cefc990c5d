"""Jobs in a killable worker process: results, cancellation, time limits, failures."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from services.optimizer.spec import Example, JobFailed, JobSpec, ModelEndpoint, Progress, Stage, Trial, Usage
from services.optimizer.subprocess_runner import _conclude, run_in_subprocess
from tests.fakes.scripted_llm import ScriptedLLM, make_tickets

pytestmark = pytest.mark.integration
MODEL = "openai/scripted"


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def spec_for(api_base: str, **overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "job_id": uuid.uuid4(),
        "task_id": uuid.uuid4(),
        "task_name": "Support tickets",
        "input_fields": ["ticket"],
        "teacher_model": MODEL,
        "judge_model": MODEL,
        "models": {MODEL: ModelEndpoint(api_base=api_base)},
        "examples": [Example(inputs={"ticket": t}, output=label, score=1.0) for t, label in make_tickets(20)],
        "current_prompt": "Name the team for this support ticket.",
        "max_trials": 2,
        "seed": 1,
        **overrides,
    }
    return JobSpec.model_validate(fields)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Progress] = []

    async def __call__(self, event: Progress) -> None:
        self.events.append(event)


async def test_a_job_runs_in_a_worker_and_streams_its_progress(llm: ScriptedLLM) -> None:
    progress = Recorder()
    result = await run_in_subprocess(spec_for(llm.api_base), progress, asyncio.Event(), time_limit=300)

    assert result.llm_calls == llm.total_calls > 0
    assert result.trials_completed == 2
    assert [e.step for e in progress.events if isinstance(e, Stage)] == [
        "loading",
        "evaluating",
        "compiling",
        "exporting",
    ]
    assert len([e for e in progress.events if isinstance(e, Trial)]) == 2
    assert [e for e in progress.events if isinstance(e, Usage)][-1].llm_calls == result.llm_calls


async def test_cancelling_stops_the_worker_and_reports_cancelled() -> None:
    with ScriptedLLM(delay=0.05) as llm:
        cancel = asyncio.Event()
        progress = Recorder()

        async def cancel_when_compiling(event: Progress) -> None:
            await progress(event)
            if isinstance(event, Stage) and event.step == "compiling":
                cancel.set()

        with pytest.raises(JobFailed) as failed:
            await run_in_subprocess(spec_for(llm.api_base, max_trials=20), cancel_when_compiling, cancel, 300)
        calls_at_stop = llm.total_calls
        await asyncio.sleep(1.0)

        assert failed.value.failure.kind == "cancelled"
        assert failed.value.failure.error_message == "cancelled by request"
        assert llm.total_calls == calls_at_stop, "the worker is gone: no call after the failure"
        partial = failed.value.failure.partial
        assert partial is not None and partial.baseline_score is not None


async def test_the_wall_clock_limit_ends_the_job() -> None:
    with ScriptedLLM(delay=0.5) as llm, pytest.raises(JobFailed) as failed:
        await run_in_subprocess(spec_for(llm.api_base), Recorder(), asyncio.Event(), 3, grace_seconds=5)

    assert failed.value.failure.kind == "timeout"
    assert failed.value.failure.error_message == "wall-clock limit of 3 s reached"


async def test_an_unreachable_endpoint_is_named_in_the_failure() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api_base = f"http://127.0.0.1:{port}/v1"

    with pytest.raises(JobFailed) as failed:
        await run_in_subprocess(spec_for(api_base), Recorder(), asyncio.Event(), 120)

    assert failed.value.failure.kind == "llm_unreachable"
    assert failed.value.failure.error_message == f"LLM endpoint {api_base} unreachable: connection refused"


@pytest.mark.parametrize(("budget", "trials_reached"), [(2.0, False), (14.0, True)])
async def test_a_spent_budget_stops_the_job_and_keeps_the_best_so_far(
    llm: ScriptedLLM, budget: float, trials_reached: bool
) -> None:
    # Priced like an expensive hosted model; with the LLM judge the whole run costs about $18
    # at this price (the scripted replies are deterministic): $2 runs out before the trials,
    # $14 during them.
    priced = ModelEndpoint(api_base=llm.api_base, input_usd_per_million=1000.0, output_usd_per_million=1000.0)
    spec = spec_for(
        llm.api_base, models={MODEL: priced}, cost_budget=budget, max_trials=10, metric="llm_judge"
    )

    with pytest.raises(JobFailed) as failed:
        await run_in_subprocess(spec, Recorder(), asyncio.Event(), 300)

    failure, partial = failed.value.failure, failed.value.failure.partial
    assert failure.kind == "budget_exhausted"
    assert "spent $" in failure.error_message and f"of ${budget:.4f}" in failure.error_message
    assert partial is not None and partial.budget_exhausted
    assert budget <= partial.cost_usd < budget * 1.1, "calls stop as soon as the budget is spent"
    assert partial.baseline_score is not None and partial.prompt_text and partial.export_score is None
    assert partial.llm_calls == llm.total_calls
    assert (partial.trials_completed >= 1 and partial.optimized_score is not None) is trials_reached
    if trials_reached:
        assert partial.demos and "Examples:" in partial.prompt_text


def test_the_worker_rejects_a_bad_spec_on_its_protocol() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.optimizer.worker"],
        input='{"job_id": "not-a-uuid"}',
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1
    assert lines == [lines[-1]] and lines[-1]["type"] == "failure"
    assert lines[-1]["failure"]["kind"] == "invalid_spec"


def test_a_worker_that_dies_without_a_result_is_a_crash_with_its_last_words() -> None:
    with pytest.raises(JobFailed) as failed:
        _conclude(None, -9, deque(["loading", "Segmentation fault"]))
    assert failed.value.failure.kind == "crashed"
    assert "killed by signal 9" in failed.value.failure.error_message
    assert "Segmentation fault" in failed.value.failure.error_message
