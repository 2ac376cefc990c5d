"""What the service adds to an optimization job: LLM calls, and the wait before a job runs.

(a) **Calls.** A small job (Yelp sentences, exact match, a few
MIPROv2 trials, 2 + 2 demos) once as a job through the service and once as plain
``dspy.MIPROv2(...).compile(...)`` in this process, with the same model settings
(temperature 0, no cache, the job's ``max_tokens``), the same MIPROv2 settings
(``shared.llm.pricing.plan_mipro``: candidates, trials, minibatch, seed, metric
threshold) and the same train/validation split (the job's seed and examples; the
dataset hashes are compared). Each run talks to its own ``ScriptedLLM``, which answers
instantly and counts every call by kind, so both counts are taken at the server. The
service's extra calls are the baseline and export re-scores (``plain`` calls, the
prompt as the system message): 2 × the validation size. DSPy's adapter differs (the
service declares the loopback model JSON-schema capable, plain DSPy uses its chat
format); the scripted server answers both formats, so no call is retried either way.
The scripted model knows nothing of sentiment (it routes support tickets): every answer
is wrong, so bootstrapping tries every training example for each demo set — step 1's
largest call count — identically in both runs.

(b) **Start latency.** Over ``--jobs`` jobs run one after another (one task, so no job
waits for a free slot): ``JobRequested`` → ``JobStarted`` from the job's event history
(event ``time``s), ``JobStarted`` → ``JobEvaluating`` (the worker process is up and has
loaded DSPy), the API's 200 → the first non-PENDING status seen by a client polling
every ``FAST_POLL_SECONDS``, and the wall time around the run (request → terminal status
minus the job's ``duration_seconds``, which starts inside the worker).

    .venv/bin/python -m bench.job_overhead [--train 40] [--trials 6] [--jobs 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm loads: no price fetch

import argparse
import contextlib
import logging
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.common import LoadSampler, broker, summary
from bench.datasets import split, yelp
from bench.live_api import INPUT_FIELD, Rows, create_task, post_feedback, system, wait_terminal
from bench.scratch import add_keep, cleaned_up
from tests.fakes.scripted_llm import ScriptedLLM
from tests.support.live import Live

SCRIPTED_MODEL = f"openai/{ScriptedLLM.model_name}"
FAST_POLL_SECONDS = 0.05
CONFLICT_RETRY_SECONDS = 30.0
KINDS = ("task", "proposer", "describe", "judge", "plain")
TASK_NAME = "overhead"  # part of the default instructions: the same in both runs
DEMOS = 2  # bootstrapped and labelled demos each


def run_config(trials: int, max_tokens: int) -> dict[str, Any]:
    """The task's ``evaluator_config``: a small MIPROv2 run scored by exact match."""
    return {
        "metric": "exact_match",
        "max_trials": trials,
        "max_bootstrapped_demos": DEMOS,
        "max_labeled_demos": DEMOS,
        "max_tokens": max_tokens,
    }


# ----------------------------------------------------------------------------- through the service


@dataclass(frozen=True)
class ServiceJob:
    """One job's figures: the client's timings, its event history and the calls it made."""

    job: dict[str, Any]
    events: list[dict[str, Any]]
    calls: Counter[str]
    to_running: float  # the API's 200 → the first non-PENDING status polled
    first_status: str  # that status (RUNNING, or later if a poll missed it)
    wall: float  # request → terminal status

    def event_gap(self, first: str, then: str) -> float:
        """Seconds between the first events of two types (``kaizen.job.<name>.v1``)."""
        return _event_time(self.events, then) - _event_time(self.events, first)


def _event_time(events: Sequence[dict[str, Any]], name: str) -> float:
    kind = f"kaizen.job.{name}.v1"
    stamp = next(e["time"] for e in events if e["type"] == kind)
    return datetime.fromisoformat(stamp).timestamp()


def optimize_when_free(live: Live, task_id: str) -> tuple[dict[str, Any], float, float]:
    """``optimize``, retried while the optimizer still sees the previous job as active (409)."""
    deadline = time.monotonic() + CONFLICT_RETRY_SECONDS
    while True:
        requested = time.monotonic()
        status, answer = live.request("POST", f"/api/v1/optimize/{task_id}")
        if status != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, answer
    return dict(answer["job"]), requested, time.monotonic()


def wait_running(live: Live, job: dict[str, Any]) -> tuple[str, float]:
    """Poll fast until the job is past PENDING; return the status seen and when."""
    while job["status"] == "PENDING":
        time.sleep(FAST_POLL_SECONDS)
        status, job = live.request("GET", f"/api/v1/jobs/{job['id']}")
        assert status == 200, job
    return str(job["status"]), time.monotonic()


def one_job(live: Live, task_id: str, scripted: ScriptedLLM, timeout: float) -> ServiceJob:
    """Run one job to its end, timing it as a client and counting its calls at the server."""
    before = Counter(scripted.calls)
    job, requested, answered = optimize_when_free(live, task_id)
    first_status, running = wait_running(live, job)
    final, done = wait_terminal(live, str(job["id"]), timeout, poll=0.2)
    status, events = live.request("GET", f"/api/v1/jobs/{job['id']}/events")
    assert status == 200, events
    return ServiceJob(
        final, events, scripted.calls - before, running - answered, first_status, done - requested
    )


def scripted_env(scripted: ScriptedLLM) -> dict[str, str]:
    """The scripted server as the service's default teacher and judge."""
    return {
        "KAIZEN_LLM_API_BASE": scripted.api_base,
        "KAIZEN_DEFAULT_TEACHER_MODEL": SCRIPTED_MODEL,
        "KAIZEN_DEFAULT_JUDGE_MODEL": SCRIPTED_MODEL,
    }


def service_jobs(
    bootstrap: str, train: Rows, config: dict[str, Any], n: int, timeout: float
) -> list[ServiceJob]:
    """``n`` jobs in a row on one task, the scripted LLM as the default models."""
    with ScriptedLLM() as scripted, system(bootstrap, scripted_env(scripted)) as live:
        task_id = create_task(live, TASK_NAME, config)
        post_feedback(live, task_id, train)
        return [one_job(live, task_id, scripted, timeout) for _ in range(n)]


# ----------------------------------------------------------------------------- plain DSPy


def job_examples(train: Rows) -> list[Any]:
    """The examples exactly as the service holds them (feedback posted with the default source)."""
    from services.optimizer.spec import Example

    return [Example(inputs={INPUT_FIELD: t}, output=label, score=1.0, source="sdk") for t, label in train]


def direct_spec(service: ServiceJob, train: Rows, trials: int) -> Any:
    """A ``JobSpec`` with the job's seed and settings: used only for its split and MIPROv2 plan."""
    from services.optimizer.spec import JobSpec

    meta = service.job["job_metadata"]
    return JobSpec(
        job_id=uuid.UUID(service.job["id"]),
        task_id=uuid.UUID(service.job["task_id"]),
        task_name=TASK_NAME,
        input_fields=[INPUT_FIELD],
        examples=job_examples(train),
        metric="exact_match",
        max_trials=trials,
        max_bootstrapped_demos=DEMOS,
        max_labeled_demos=DEMOS,
        seed=int(meta["seed"]),
    )


def plain_mipro(spec: Any, api_base: str) -> str:
    """``dspy.MIPROv2(...).compile(...)`` with the job's settings; returns the dataset hash used."""
    import dspy

    from services.optimizer.metrics import exact_match
    from services.optimizer.pipeline.dataset import prepare_dataset
    from services.optimizer.pipeline.run import default_instruction
    from shared.llm.pricing import plan_mipro

    logging.getLogger("dspy").setLevel(logging.WARNING)  # one line per trial otherwise
    data = prepare_dataset(spec)
    plan = plan_mipro(len(data.val), spec.optimizer_settings())
    lm = dspy.LM(
        SCRIPTED_MODEL,
        api_base=api_base,
        api_key="local",
        temperature=0.0,
        max_tokens=spec.max_tokens,
        cache=False,
        num_retries=1,
    )
    fields = {INPUT_FIELD: (str, dspy.InputField()), "output": (str, dspy.OutputField())}
    student = dspy.Predict(dspy.Signature(fields, default_instruction(spec)))

    def metric(example: Any, prediction: Any, trace: Any = None) -> float:
        return exact_match({}, str(example.output), str(getattr(prediction, "output", "") or ""))

    def to_dspy(rows: Sequence[Any]) -> list[Any]:
        return [dspy.Example(**e.inputs, output=e.output).with_inputs(INPUT_FIELD) for e in rows]

    optimizer = dspy.MIPROv2(
        metric=metric,
        prompt_model=lm,
        task_model=lm,
        auto=None,
        num_candidates=plan.num_fewshot_candidates,
        max_bootstrapped_demos=spec.max_bootstrapped_demos,
        max_labeled_demos=spec.max_labeled_demos,
        num_threads=spec.num_threads,
        max_errors=len(data.train) + len(data.val) + 10,
        seed=spec.seed,
        metric_threshold=spec.min_score_for_gold,
        verbose=False,
    )
    # DSPy prints progress (and its bars) to stdout: keep stdout for this benchmark's figures.
    with dspy.context(lm=lm), contextlib.redirect_stdout(sys.stderr):
        optimizer.compile(
            student,
            trainset=to_dspy(data.train),
            valset=to_dspy(data.val),
            num_trials=plan.num_trials,
            minibatch=plan.minibatch,
            seed=spec.seed,
        )
    return data.dataset_hash


def direct_calls(spec: Any) -> tuple[Counter[str], str]:
    """The plain run's calls by kind, counted at its own scripted server."""
    with ScriptedLLM() as scripted:
        dataset_hash = plain_mipro(spec, scripted.api_base)
        return Counter(scripted.calls), dataset_hash


# ----------------------------------------------------------------------------- reports


def print_calls(service: ServiceJob, direct: Counter[str], same_data: bool) -> None:
    """(a): the calls of the job and of plain MIPROv2, by kind, as the scripted servers counted them."""
    meta = service.job["job_metadata"]
    val = meta["val_size"]
    print(
        f"(a) calls, job {service.job['status']}, seed {meta['seed']}, train/val {meta['train_size']}/{val}, "
        f"{meta['trials_completed']} trials, same split as plain DSPy: {same_data}"
    )
    for kind in KINDS:
        print(f"    {kind:9} service {service.calls[kind]:4}   plain MIPROv2 {direct[kind]:4}")
    total, plain = service.calls.total(), direct.total()
    print(
        f"    total     service {total:4}   plain MIPROv2 {plain:4}   extra {total - plain} "
        f"(baseline + export re-score = 2 × val {val} = {2 * val})"
    )
    print(f"    job_metadata.llm_calls {meta['llm_calls']} (the job's own meter)")


def print_latency(jobs: list[ServiceJob]) -> None:
    """(b): start latency from the event history and as a polling client sees it."""
    statuses = dict(Counter(j.job["status"] for j in jobs))
    seen = dict(Counter(j.first_status for j in jobs))
    rows = {
        "JobRequested → JobStarted (event times)": [j.event_gap("requested", "started") for j in jobs],
        "JobStarted → JobEvaluating (worker up)": [j.event_gap("started", "evaluating") for j in jobs],
        f"API 200 → RUNNING (poll {FAST_POLL_SECONDS * 1000:.0f} ms)": [j.to_running for j in jobs],
        "request → terminal status (wall)": [j.wall for j in jobs],
        "wall − duration_seconds": [j.wall - float(j.job["job_metadata"]["duration_seconds"]) for j in jobs],
    }
    print(f"(b) {len(jobs)} jobs in a row on one task: {statuses}; first status polled after 200: {seen}")
    for label, values in rows.items():
        print(f"    {label:42} {summary(values)}")


def run(args: argparse.Namespace) -> None:
    train, _ = split(yelp(), args.train, 0)
    config = run_config(args.trials, args.max_tokens)
    print(
        f"data: {len(train)} Yelp sentences as feedback; MIPROv2 {args.trials} trials, "
        f"demos {DEMOS}+{DEMOS}, exact_match; the scripted LLM"
    )
    with LoadSampler() as load, broker() as bootstrap:
        started = time.monotonic()
        jobs = service_jobs(bootstrap, train, config, args.jobs, args.timeout)
        service_seconds = time.monotonic() - started
        spec = direct_spec(jobs[0], train, args.trials)
        started = time.monotonic()
        direct, dataset_hash = direct_calls(spec)
        direct_seconds = time.monotonic() - started
    print_calls(jobs[0], direct, dataset_hash == jobs[0].job["job_metadata"]["dataset_hash"])
    print_latency(jobs)
    print(
        f"time: {args.jobs} service jobs {service_seconds:.1f} s (incl. system start-up), "
        f"plain MIPROv2 {direct_seconds:.1f} s"
    )
    print(f"conditions: {load.summary()}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Calls and start latency the service adds to a job.")
    parser.add_argument("--train", type=int, default=40, help="sentences posted as feedback (80/20 split)")
    parser.add_argument("--trials", type=int, default=6, help="MIPROv2 trials (evaluator_config.max_trials)")
    parser.add_argument("--max-tokens", type=int, default=256, help="the job's cap on every answer")
    parser.add_argument("--jobs", type=int, default=5, help="jobs timed for (b)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for one job")
    add_keep(parser)
    args = parser.parse_args()
    with cleaned_up(args.keep):
        run(args)


if __name__ == "__main__":
    main()
