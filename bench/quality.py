"""Optimization quality through the service: does the exported prompt beat the one the application runs?

For each (data set, prompt contract, optimizer) of the matrix, through the public API of
the running services (``tests.support.live.live_system``, the API on a real port) with
the embedded SmolLM2-135M started in this process and the default models pointed at it:

1. create a task (``schema_json: ["text"]``, ``prompt_contract``, ``optimizer``, a small
   ``evaluator_config``; the metric is left to ``auto``, which picks ``label_match``);
2. register a one-line baseline prompt under that contract (``POST /api/v1/prompts/{id}``);
3. post ``--train`` labelled rows as feedback (output = the gold label, score 1.0);
4. ``POST /api/v1/optimize/{id}`` and poll the job to a terminal status;
5. score the baseline and the job's exported prompt version on ``--holdout`` rows the job
   never saw, calling the model as the application does
   (:func:`shared.prompt_contract.render_messages`, temperature 0, the job's ``max_tokens``)
   with the job's metric (``label_match`` over the data set's labels), beside the
   accuracy of always answering the majority label.

Data (:mod:`bench.datasets`): ``yelp``, binary sentiment of Yelp review sentences;
``languages``, which of five languages a UDHR paragraph is written in.

    .venv/bin/python -m bench.quality [--datasets yelp,languages]
        [--contracts template,system,messages] [--optimizers mipro] [--train 100]
        [--holdout 200] [--trials 6] [--llm-threads 1] [--timeout 3600]

Runs go one after another in one system, in the order of ``--datasets`` then
``--contracts``. One thread for llama.cpp by default: on busy shared cores its threads
wait for each other, and 2 threads ran several times slower than 1 here.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm loads: no price fetch

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.common import LoadSampler, broker
from bench.datasets import Rows, languages, split, yelp
from bench.live_api import (
    INPUT_FIELD,
    create_task,
    job_prompt,
    optimize,
    post_feedback,
    register_prompt,
    system,
    wait_terminal,
)
from bench.scratch import add_keep, cleaned_up
from shared.llm.embedded import LITELLM_MODEL, EmbeddedLLM
from tests.support.live import Live

DEMOS = 2  # bootstrapped and labelled demos each: a short prompt for a 135M model
MAX_TOKENS = 32  # a label is a word or two; a longer reply is cut, not made right
HOLDOUT_THREADS = 2  # as the job's re-score (JobSpec.num_threads)
CONTRACTS = ("template", "system", "messages")
FORM_CHARS = 20


@dataclass(frozen=True)
class DataSet:
    """A labelled public set and the one-line instruction a user would start from."""

    load: Callable[[], Rows]
    task: str  # the task's name (suffixed by the contract: names are unique)
    instruction: str


DATASETS = {
    "yelp": DataSet(yelp, "yelp-sentiment", "Classify the sentiment of this review."),
    "languages": DataSet(languages, "udhr-language", "Which language is this text written in?"),
}


def baseline_prompt(contract: str, instruction: str) -> str:
    """The one-liner as the application would write it under ``contract``."""
    template = f"{instruction}\n\n{{{INPUT_FIELD}}}"
    if contract == "system":
        return instruction
    if contract == "template":
        return template
    return json.dumps([{"role": "user", "content": template}])


def evaluator_config(trials: int) -> dict[str, Any]:
    """A small MIPROv2 run; the metric is the default (``auto``: label match on a label set)."""
    return {
        "max_trials": trials,
        "max_bootstrapped_demos": DEMOS,
        "max_labeled_demos": DEMOS,
        "max_tokens": MAX_TOKENS,
    }


# ----------------------------------------------------------------------------- held-out scoring


@dataclass(frozen=True)
class Scored:
    """Accuracy of one prompt file on held-out rows, and what the model answered."""

    accuracy: float
    answers: Counter[str]  # answers cut at FORM_CHARS, so that similar ones group

    def forms(self, top: int = 3) -> str:
        common = self.answers.most_common(top)
        other = sum(self.answers.values()) - sum(n for _, n in common)
        shown = ", ".join(f"{a!r} {n}" for a, n in common)
        return f"{shown}, other {other}" if other else shown


def score(api_base: str, contract: str, prompt: str, rows: Rows) -> Scored:
    """``prompt`` called as the application calls it, on each row, scored by label match."""
    import litellm

    from services.optimizer.metrics import build_metric, normalize
    from shared.prompt_contract import render_messages

    metric = build_metric("label_match", {"labels": sorted({label for _, label in rows})})

    def answer(text: str) -> str:
        response = litellm.completion(
            model=LITELLM_MODEL,
            api_base=api_base,
            api_key="local",
            temperature=0.0,
            max_tokens=MAX_TOKENS,
            messages=render_messages(contract, prompt, {INPUT_FIELD: text}, [INPUT_FIELD]),  # type: ignore[arg-type]
        )
        return str(response.choices[0].message.content or "").strip()

    with ThreadPoolExecutor(max_workers=HOLDOUT_THREADS) as pool:
        replies = list(pool.map(answer, [text for text, _ in rows]))
    right = sum(metric({INPUT_FIELD: t}, label, r) for (t, label), r in zip(rows, replies, strict=True))
    return Scored(right / len(rows), Counter(normalize(r)[:FORM_CHARS] for r in replies))


def majority_share(rows: Rows) -> float:
    """The accuracy of always answering the most frequent label: the floor a classifier must beat."""
    return Counter(label for _, label in rows).most_common(1)[0][1] / len(rows)


# ----------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class Run:
    """One (data set, contract, optimizer) of the matrix."""

    dataset: str
    contract: str
    optimizer: str


def run_one(live: Live, api_base: str, run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """The whole loop through the API, then the held-out scores; returns one table row."""
    data = DATASETS[run.dataset]
    train, holdout = split(data.load(), args.train, args.holdout)
    settings = {"prompt_contract": run.contract, "optimizer": run.optimizer}
    name = f"{data.task}-{run.contract}-{run.optimizer}"  # one system serves the whole matrix
    task_id = create_task(live, name, evaluator_config(args.trials), **settings)
    baseline = baseline_prompt(run.contract, data.instruction)
    register_prompt(live, task_id, baseline)
    post_feedback(live, task_id, train)
    requested = time.monotonic()
    job = optimize(live, task_id)
    job, done = wait_terminal(live, str(job["id"]), args.timeout)
    meta = job.get("job_metadata") or {}
    row: dict[str, Any] = {**vars(run), "status": job["status"], "meta": meta, "wall": done - requested}
    row["rows"] = f"{len(train)}/{len(holdout)}"
    print(f"\n## {run.dataset} / {run.contract} / {run.optimizer}: {job['status']} ({job['progress_step']})")
    if job.get("error_message"):
        print(f"job error: {job['error_message']}")
    print(f"job_metadata: {json.dumps(meta, ensure_ascii=False)}")
    export = job_prompt(live, task_id, str(job["id"]))
    if export is None:
        print(f"no prompt version of job {job['id']}")
        return row
    print_prompts(baseline, export)
    started = time.monotonic()
    before = score(api_base, run.contract, baseline, holdout)
    # Temperature 0: the same file gives the same answers, so a job that kept the baseline costs one pass.
    after = before if export == baseline else score(api_base, run.contract, export, holdout)
    row.update(
        holdout_baseline=before.accuracy, holdout_export=after.accuracy, majority=majority_share(holdout)
    )
    print(f"held-out answers, baseline: {before.forms()}")
    print(f"held-out answers, export:   {after.forms()}")
    passes = 1 if export == baseline else 2
    print(f"held-out ({len(holdout)}): {passes} × {len(holdout)} calls in {time.monotonic() - started:.0f} s")
    return row


def print_prompts(baseline: str, export: str, width: int = 300) -> None:
    """Both prompt files on one line each (newlines shown as ⏎), cut at ``width`` characters."""
    for name, text in (("baseline", baseline), ("export", export)):
        flat = text.strip().replace("\n", "⏎")
        print(f"{name} prompt ({len(text)} chars): {flat[:width]}{'…' if len(flat) > width else ''}")


# ----------------------------------------------------------------------------- the table

COLUMNS = (
    "data | contract | optimizer | job | rows train/held-out | val baseline | in-DSPy | program export | "
    "export | job test baseline / export / majority | held-out baseline | held-out export | "
    "held-out majority | chosen | LLM calls | job s | load"
)


def _f(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "–"


def table_row(row: dict[str, Any]) -> str:
    meta = row["meta"]
    test = " / ".join(
        _f(meta.get(k)) for k in ("test_baseline_score", "test_export_score", "test_majority_score")
    )
    cells = [
        row["dataset"],
        row["contract"],
        row["optimizer"],
        row["status"],
        row["rows"],
        *(
            _f(meta.get(k))
            for k in ("baseline_score", "optimized_score", "program_export_score", "export_score")
        ),
        test,
        *(_f(row.get(k)) for k in ("holdout_baseline", "holdout_export", "majority")),
        str(meta.get("chosen_candidate", "–")),
        str(meta.get("llm_calls", "–")),
        f"{meta.get('duration_seconds', '–')} ({row['wall']:.0f} wall)",
        row["load"],
    ]
    return "| " + " | ".join(cells) + " |"


def print_table(rows: list[dict[str, Any]], load: LoadSampler) -> None:
    print("\n| " + COLUMNS + " |")
    print("|" + "---|" * len(COLUMNS.split(" | ")))
    for row in rows:
        print(table_row(row))
    print(f"\nconditions: {load.summary()}", flush=True)


def run(args: argparse.Namespace) -> None:
    matrix = [
        Run(d, c, o)
        for d in args.datasets.split(",")
        for c in args.contracts.split(",")
        for o in args.optimizers.split(",")
    ]
    unknown = [r for r in matrix if r.dataset not in DATASETS or r.contract not in CONTRACTS]
    if unknown:
        raise SystemExit(f"unknown data set or contract: {unknown}")
    print(
        f"runs: {', '.join(f'{r.dataset}/{r.contract}/{r.optimizer}' for r in matrix)}; {args.train} rows as "
        f"feedback, {args.holdout} held out; {args.trials} trials, demos {DEMOS}+{DEMOS}, max_tokens "
        f"{MAX_TOKENS}, metric auto; SmolLM2 on {args.llm_threads} llama.cpp thread(s)",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    with (
        LoadSampler() as load,
        EmbeddedLLM(threads=args.llm_threads) as llm,
        broker() as bootstrap,
        system(bootstrap, {"KAIZEN_LLM_API_BASE": llm.api_base}) as live,
    ):
        for one in matrix:
            first = len(load.samples)
            row = run_one(live, llm.api_base, one, args)
            during = load.samples[first:] or [os.getloadavg()[0]]
            row["load"] = f"{sum(during) / len(during):.1f} (max {max(during):.1f})"
            rows.append(row)
            print_table(rows, load)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Prompt quality through the service, per data set and contract."
    )
    parser.add_argument("--datasets", default="yelp,languages", help=f"of {', '.join(DATASETS)}")
    parser.add_argument("--contracts", default=",".join(CONTRACTS), help="prompt contracts to run")
    parser.add_argument(
        "--optimizers", default="mipro", help="the task's optimizer (mipro; gepa when available)"
    )
    parser.add_argument("--train", type=int, default=100, help="rows posted as feedback")
    parser.add_argument("--holdout", type=int, default=200, help="rows the job never sees")
    parser.add_argument("--trials", type=int, default=6, help="MIPROv2 trials (evaluator_config.max_trials)")
    parser.add_argument("--llm-threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each job")
    add_keep(parser)
    args = parser.parse_args()
    with cleaned_up(args.keep):
        run(args)


if __name__ == "__main__":
    main()
