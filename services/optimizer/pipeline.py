"""One optimization job, end to end: data → baseline → MIPROv2 → export → re-score.

``run_job`` is synchronous and long (minutes); the worker process runs it. Steps:

1. **loading** — gold examples only, a seeded shuffle, the 80/20 split, the dataset hash.
2. **evaluating** — the current prompt scored on the validation set *the way the
   application calls the model* (export contract: system = prompt text, user = inputs).
3. **compiling** — DSPy MIPROv2 with explicit prompt and task models and a ``Trial``
   event per trial. One unparseable answer or proposal never ends the run: the raw text
   is scored, the original instruction kept, and the incident counted.
4. **exporting** — instructions, demos and an output-format rule rendered into one
   text (the prompt file's content), then re-scored outside DSPy exactly as in step 2,
   on the same validation set, so ``baseline_score`` and ``export_score`` compare.

Every figure in the result is measured by the job's :class:`Meter`. A spent budget, a
stop request or a dead endpoint ends the run at the next safe point with ``JobFailed``,
keeping what was measured (and the best prompt so far, as a draft) in ``partial``.

This module holds the DSPy glue too (lenient adapter, MIPROv2 hooks, robust proposer)
because the optimizer's other module names belong to the Kafka side.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm loads: no price fetch

import json
import logging
import random
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import dspy
import litellm
from dspy.propose import GroundedProposer
from dspy.teleprompt.mipro_optimizer_v2 import BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT
from dspy.utils.exceptions import AdapterParseError

from services.optimizer.metering import (
    BudgetExhausted,
    EndpointFailing,
    Meter,
    MeteredLM,
    RunStopped,
    StopRequested,
    call_cost,
    token_counts,
)
from services.optimizer.metrics import MetricError, MetricFn, build_metric, uses_judge
from services.optimizer.spec import (
    Baseline,
    BeforeAfter,
    Example,
    JobFailed,
    JobFailure,
    JobResult,
    JobSpec,
    Progress,
    Stage,
    Trial,
    Usage,
)
from services.optimizer.spec import dataset_hash as spec_dataset_hash
from shared.llm.pricing import MIN_USABLE_EXAMPLES, Price, is_local, plan_mipro, split_sizes

log = logging.getLogger(__name__)

FORMAT_RULE = "Reply with the output only: no preamble, no explanation, no quotes."
BEFORE_AFTER_EXAMPLES = 5
MIN_INSTRUCTION_CHARS = 12
Report = Callable[[Progress], None]


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Dataset:
    """The examples a job learns from (train) and is measured on (val)."""

    train: list[Example]
    val: list[Example]
    excluded: int
    dataset_hash: str


def dataset_hash(source: JobSpec | Sequence[Example]) -> str:
    """sha256 of the examples' canonical JSON (see ``spec.dataset_hash``; no dspy needed there)."""
    return spec_dataset_hash(source.examples if isinstance(source, JobSpec) else source)


def prepare_dataset(spec: JobSpec) -> Dataset:
    """Gold examples only, shuffled by the seed, split 80/20.

    Outputs scored below ``min_score_for_gold`` are *excluded* from training and
    validation alike: a bad answer must never be taught as a demo nor used as the
    reference a candidate is compared with. They only count in ``excluded_examples``.
    Examples missing an input field or with an empty output are excluded too.
    """
    usable = spec.usable_examples()
    if len(usable) < MIN_USABLE_EXAMPLES:
        raise JobFailed(
            JobFailure(
                kind="too_few_examples",
                error_message=(
                    f"too few usable examples: have {len(usable)} with score ≥ {spec.min_score_for_gold:g}, "
                    f"need at least {MIN_USABLE_EXAMPLES}"
                ),
            )
        )
    ordered = sorted(usable, key=Example.canonical_json)  # arrival order must not change the split
    random.Random(spec.seed).shuffle(ordered)
    train_size, _ = split_sizes(len(ordered))
    excluded = len(spec.examples) - len(usable)
    return Dataset(ordered[:train_size], ordered[train_size:], excluded, spec.dataset_hash())


def user_message(inputs: Mapping[str, str], input_fields: Sequence[str]) -> str:
    """The user message of the export contract: a lone input's bare value, else ``name: value`` lines."""
    if len(input_fields) == 1:
        return inputs[input_fields[0]]
    return "\n".join(f"{name}: {inputs[name]}" for name in input_fields)


def _to_dspy(example: Example, input_fields: Sequence[str]) -> Any:
    values = {name: example.inputs[name] for name in input_fields}
    return dspy.Example(**values, output=example.output).with_inputs(*input_fields)


# ----------------------------------------------------------------------------- models


def _declare_local_model(model: str) -> None:
    """Tell LiteLLM a loopback-served model honours JSON-schema ``response_format``.

    llama.cpp (and vLLM, Ollama) constrain decoding to the schema, so DSPy's JSONAdapter
    gets parseable replies even from a 135M model; unknown to LiteLLM, DSPy would fall
    back to plain JSON mode, where SmolLM2 often answers ``{}``.
    """
    if litellm.supports_response_schema(model=model):
        return
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    # No prices here: local calls are priced by shared.llm.pricing (free unless the operator says).
    entry = {"supports_response_schema": True, "litellm_provider": provider, "mode": "chat"}
    litellm.register_model({model: entry})


def _make_lm(spec: JobSpec, model: str, meter: Meter) -> MeteredLM:
    endpoint = spec.endpoint(model)
    local = is_local(model, endpoint.api_base)
    if local and not endpoint.api_base:
        message = f"no api_base configured for the local model {model}"
        raise JobFailed(JobFailure(kind="invalid_spec", error_message=message))
    if local:
        _declare_local_model(model)
    price = None
    if endpoint.input_usd_per_million is not None or endpoint.output_usd_per_million is not None:
        price = Price(endpoint.input_usd_per_million or 0.0, endpoint.output_usd_per_million or 0.0)
    api_key = endpoint.api_key.get_secret_value() if endpoint.api_key else ("local" if local else None)
    client = {k: v for k, v in {"api_base": endpoint.api_base, "api_key": api_key}.items() if v is not None}
    return MeteredLM(
        model,
        meter=meter,
        price=price,
        temperature=0.0,
        max_tokens=spec.max_tokens,
        cache=False,  # every figure is measured: no answer may come from a cache
        engine="litellm",  # the contract is LiteLLM over HTTP, not DSPy's native engine
        num_retries=1 if local else 3,
        **client,
    )


def check_endpoints(lms: Sequence[MeteredLM], timeout: float = 5.0) -> None:
    """Fail fast, naming the URL, when a configured endpoint does not accept connections."""
    for base in sorted({str(lm.kwargs["api_base"]) for lm in lms if lm.kwargs.get("api_base")}):
        url = urlparse(base)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname or "", port), timeout=timeout).close()
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc) or type(exc).__name__
            raise JobFailed(
                JobFailure(kind="llm_unreachable", error_message=f"LLM endpoint {base} unreachable: {reason}")
            ) from exc


# ----------------------------------------------------------------------------- DSPy glue


def _fallback_outputs(signature: Any, text: str) -> dict[str, Any]:
    """The task's outputs from a reply the adapter could not parse: salvaged JSON, else the raw text."""
    import json_repair  # a dependency of dspy

    names = list(signature.output_fields)
    values: dict[str, Any] = dict.fromkeys(names, "")
    cleaned = re.sub(r"\[\[ ## \w+ ## \]\]", "", text or "").strip()
    salvaged = json_repair.loads(cleaned) if cleaned.startswith("{") else None
    if isinstance(salvaged, dict) and any(name in salvaged for name in names):
        values.update({name: str(salvaged[name]) for name in names if name in salvaged})
    else:
        values[names[-1]] = cleaned
    return values


class LenientAdapter(dspy.ChatAdapter):  # type: ignore[misc]
    """DSPy's adapters, but an unparseable reply never raises.

    Models that honour JSON schemas get DSPy's JSONAdapter (constrained decoding); others
    get the ChatAdapter. A task answer neither can parse is still an answer: the metric
    scores its raw text (usually low) and the meter counts a parse failure. Any other
    signature (proposer, judge, summaries) gets empty outputs, which its caller treats
    as a failed proposal or judgement — the original instruction, a zero score.
    """

    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter
        self._structured = dspy.JSONAdapter()

    def __call__(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: Any, inputs: Any) -> Any:
        try:
            if lm.supports_response_schema:
                return self._structured(lm, lm_kwargs, signature, demos, inputs)
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            if "output" not in signature.output_fields:
                return [dict.fromkeys(signature.output_fields, "")]
            self.meter.note("parse_failures")
            log.info("unparseable answer scored as raw text")
            return [_fallback_outputs(signature, str(exc.lm_response))]


class TaskProgram(dspy.Module):  # type: ignore[misc]
    """The task as a DSPy program: the input fields in, ``output`` out."""

    def __init__(self, input_fields: Sequence[str], instructions: str, chain_of_thought: bool) -> None:
        super().__init__()
        fields: dict[str, Any] = {name: (str, dspy.InputField()) for name in input_fields}
        fields["output"] = (str, dspy.OutputField())
        signature = dspy.Signature(fields, instructions)
        self.answer = dspy.ChainOfThought(signature) if chain_of_thought else dspy.Predict(signature)

    def forward(self, **inputs: str) -> Any:
        return self.answer(**inputs)


class _RobustProposer(GroundedProposer):  # type: ignore[misc]
    """MIPROv2's proposer, where a failed or empty proposal falls back to the original instruction."""

    def __init__(self, *, meter: Meter, **kwargs: Any) -> None:
        self.meter = meter  # set first: the parent's __init__ already calls the LM
        super().__init__(**kwargs)

    def propose_instruction_for_predictor(self, **kwargs: Any) -> str:
        original = str(kwargs["predictor"].signature.instructions)
        try:
            proposed = str(super().propose_instruction_for_predictor(**kwargs) or "")
        except RunStopped:
            raise
        except Exception as exc:
            log.warning("instruction proposal failed, keeping the original: %s", exc)
            proposed = ""
        proposed = re.sub(r"\[\[ ## \w+ ## \]\]", "", proposed).strip()
        if len(proposed) < MIN_INSTRUCTION_CHARS:
            self.meter.note("proposal_fallbacks")
            return original
        return proposed


class KaizenMIPRO(dspy.MIPROv2):  # type: ignore[misc]
    """MIPROv2 with a robust proposer, per-trial progress and stops at trial boundaries."""

    def __init__(self, *, meter: Meter, on_trial: Callable[[Trial], None], total_trials: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.meter, self.on_trial, self.total_trials = meter, on_trial, total_trials
        self.trials_completed = 0
        self.best_score: float | None = None

    def _bootstrap_fewshot_examples(self, *args: Any, **kwargs: Any) -> Any:
        demos = super()._bootstrap_fewshot_examples(*args, **kwargs)
        self.meter.check()  # a safe point: nothing half-done to lose
        return demos

    def _propose_instructions(
        self,
        program: Any,
        trainset: list[Any],
        demo_candidates: Any,
        view_data_batch_size: int,
        program_aware_proposer: bool,
        data_aware_proposer: bool,
        tip_aware_proposer: bool,
        fewshot_aware_proposer: bool,
        num_instruct_candidates: int,
    ) -> dict[int, list[str]]:
        # Same as MIPROv2's own step 2, with _RobustProposer in place of GroundedProposer.
        proposer = _RobustProposer(
            meter=self.meter,
            program=program,
            trainset=trainset,
            prompt_model=self.prompt_model,
            view_data_batch_size=view_data_batch_size,
            program_aware=program_aware_proposer,
            use_dataset_summary=data_aware_proposer,
            use_task_demos=fewshot_aware_proposer,
            num_demos_in_context=BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT,
            use_tip=tip_aware_proposer,
            set_tip_randomly=tip_aware_proposer,
            use_instruct_history=False,
            set_history_randomly=False,
            verbose=self.verbose,
            rng=self.rng,
            init_temperature=self.init_temperature,
        )
        candidates: dict[int, list[str]] = proposer.propose_instructions_for_program(
            trainset=trainset,
            program=program,
            demo_candidates=demo_candidates,
            N=num_instruct_candidates,
            trial_logs={},
        )
        for i, predictor in enumerate(program.predictors()):
            candidates[i][0] = predictor.signature.instructions
        self.meter.check()
        return candidates

    # MIPROv2 (DSPy 3.4, pinned < 3.5) calls one of these two private methods after each
    # trial's evaluation, with the optuna trial among the arguments: our per-trial hook.
    def _log_normal_eval(self, score: float, best_score: float, *args: Any, **kwargs: Any) -> None:
        super()._log_normal_eval(score, best_score, *args, **kwargs)
        self._trial_done(args, score, best_score)

    def _log_minibatch_eval(self, score: float, best_score: float, *args: Any, **kwargs: Any) -> None:
        super()._log_minibatch_eval(score, best_score, *args, **kwargs)
        self._trial_done(args, score, best_score)

    def _trial_done(self, args: tuple[Any, ...], score: float, best_score: float) -> None:
        trial = next(arg for arg in args if hasattr(arg, "study") and hasattr(arg, "number"))
        if self.meter.stop_reason() is not None:
            trial.study.stop()  # calls were refused mid-trial: its score is not a measurement
            return
        self.trials_completed += 1
        self.best_score = round(best_score / 100, 4)  # DSPy scores in percent, rounded to 0.01
        self.on_trial(
            Trial(
                trial=self.trials_completed,
                score=round(score / 100, 4),
                best=self.best_score,
                total=self.total_trials,
            )
        )


# ----------------------------------------------------------------------------- export


def program_demos(program: Any, input_fields: Sequence[str]) -> list[dict[str, str]]:
    """The best program's demos as plain ``{input fields…, output}`` dicts."""
    demos: list[dict[str, str]] = []
    for _, predictor in program.named_predictors():
        for demo in predictor.demos:
            values = dict(demo.items()) if hasattr(demo, "items") else dict(demo)
            if all(values.get(name) for name in input_fields) and values.get("output"):
                demo_inputs = {name: str(values[name]) for name in input_fields}
                demos.append({**demo_inputs, "output": str(values["output"])})
    return demos


def default_instructions(spec: JobSpec) -> str:
    """The instructions of a task that has no prompt yet."""
    return f"{spec.task_name}: given the {', '.join(spec.input_fields)}, write the output."


def export_instructions(prompt_text: str) -> str:
    """The instructions part of a prompt; a previous export's format rule and demos are dropped.

    The program starts from these, so demos are learned afresh instead of piling up
    from one optimization to the next.
    """
    return prompt_text.split(FORMAT_RULE, 1)[0].strip()


def program_instructions(program: Any) -> str:
    return "\n\n".join(str(p.signature.instructions).strip() for _, p in program.named_predictors())


def render_export(instructions: str, demos: Sequence[Mapping[str, str]], input_fields: Sequence[str]) -> str:
    """The prompt file's content: instructions, the output-format rule, then worked examples.

    Each example shows the user message exactly as the application sends it (see
    :func:`user_message`), then the expected output, so the demos teach the real format.
    """
    parts = [instructions.strip(), FORMAT_RULE]
    if demos:
        lines = ["Examples:"]
        for demo in demos:
            shown = user_message(demo, input_fields)
            lines += ["", f"Input: {shown}" if len(input_fields) == 1 else shown, f"Output: {demo['output']}"]
        parts.append("\n".join(lines))
    return "\n\n".join(part for part in parts if part) + "\n"


def score_prompt(
    text: str, examples: Sequence[Example], spec: JobSpec, lm: MeteredLM, metric: MetricFn
) -> tuple[float, list[str]]:
    """Score ``text`` used as the application uses it, calling LiteLLM directly (not DSPy)."""
    adapter = LenientAdapter(lm.meter)  # for the judge's DSPy calls; threads don't inherit dspy.context
    client = {k: lm.kwargs[k] for k in ("api_base", "api_key", "temperature", "max_tokens") if k in lm.kwargs}

    def answer(example: Example) -> tuple[float, str]:
        lm.meter.check()
        messages = [
            {"role": "system", "content": text},
            {"role": "user", "content": user_message(example.inputs, spec.input_fields)},
        ]
        try:
            response = litellm.completion(
                model=lm.model, messages=messages, num_retries=lm.num_retries, **client
            )
        except Exception as exc:
            lm.meter.call_failed(lm.endpoint, exc)
            lm.meter.check()
            lm.meter.note("rescore_errors")
            return 0.0, ""
        usage = dict(getattr(response, "usage", None) or {})
        reported = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        cost = call_cost(lm.model, lm.kwargs.get("api_base"), usage, reported, lm.price_override)
        lm.meter.add(*token_counts(usage), cost)
        content = str(response.choices[0].message.content or "").strip()
        with dspy.context(adapter=adapter):
            return metric(example.inputs, example.output, content), content

    with ThreadPoolExecutor(max_workers=spec.num_threads) as pool:
        scored = list(pool.map(answer, examples))
    return sum(s for s, _ in scored) / len(scored), [a for _, a in scored]


# ----------------------------------------------------------------------------- the run


@dataclass
class _Run:
    """What one run has measured so far; a failure turns it into a partial result."""

    spec: JobSpec
    meter: Meter
    started: float = field(default_factory=time.monotonic)
    data: Dataset | None = None
    baseline_text: str = ""
    baseline_score: float | None = None
    baseline_answers: list[str] = field(default_factory=list)
    program: Any = None
    optimized_score: float | None = None
    trials_completed: int = 0

    def result(self, prompt_text: str, export_score: float | None, after: Sequence[str] = ()) -> JobResult:
        usage, data = self.meter.snapshot(), self.data
        val = data.val if data else []
        answers_after = list(after) + [None] * len(val)
        examples = [
            BeforeAfter(inputs=e.inputs, expected=e.output, before=before, after=answers_after[i])
            for i, (e, before) in enumerate(zip(val, self.baseline_answers, strict=False))
        ][:BEFORE_AFTER_EXAMPLES]
        incidents = self.meter.incidents
        return JobResult(
            prompt_text=prompt_text,
            demos=program_demos(self.program, self.spec.input_fields) if self.program is not None else [],
            dspy_state=json.loads(json.dumps(self.program.dump_state(), default=str)) if self.program else {},
            baseline_score=self.baseline_score,
            optimized_score=self.optimized_score,
            export_score=export_score,
            train_size=len(data.train) if data else 0,
            val_size=len(val),
            trials_completed=self.trials_completed,
            llm_calls=usage.llm_calls,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=round(usage.cost_usd, 6),
            duration_seconds=round(time.monotonic() - self.started, 3),
            dspy_version=str(dspy.__version__),
            dataset_hash=data.dataset_hash if data else "",
            seed=self.spec.seed,
            examples=examples,
            budget_exhausted=self.meter.exhausted,
            excluded_examples=data.excluded if data else 0,
            parse_failures=incidents["parse_failures"],
            proposal_fallbacks=incidents["proposal_fallbacks"],
            judge_failures=incidents["judge_failures"],
            failed_calls=usage.failed_calls,
        )

    def failed(self, kind: str, message: str) -> JobFailed:
        """The failure to raise, with the best result so far as its partial."""
        return JobFailed(JobFailure(kind=kind, error_message=message, partial=self.draft()))

    def draft(self) -> JobResult:
        """The best prompt so far, not re-scored (a stop forbids more calls)."""
        if self.program is None:
            return self.result(self.baseline_text, None)
        fields = self.spec.input_fields
        text = render_export(program_instructions(self.program), program_demos(self.program, fields), fields)
        return self.result(text, None)


def _report_usage(report: Report, meter: Meter) -> None:
    usage = meter.snapshot()
    report(
        Usage(
            llm_calls=usage.llm_calls,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=round(usage.cost_usd, 6),
        )
    )


def _compile(run: _Run, report: Report, task_lm: MeteredLM, prompt_lm: MeteredLM, metric: MetricFn) -> None:
    spec, data = run.spec, run.data
    assert data is not None
    plan = plan_mipro(len(data.val), spec.optimizer_settings())
    instructions = export_instructions(spec.current_prompt or "") or default_instructions(spec)
    student = TaskProgram(spec.input_fields, instructions, spec.module_type == "chain_of_thought")

    def dspy_metric(example: Any, prediction: Any, trace: Any = None) -> float:
        inputs = {name: str(example[name]) for name in spec.input_fields}
        return metric(inputs, str(example.output), str(getattr(prediction, "output", "") or ""))

    def on_trial(trial: Trial) -> None:
        run.trials_completed, run.optimized_score = trial.trial, trial.best
        report(trial)
        _report_usage(report, run.meter)

    optimizer = KaizenMIPRO(
        meter=run.meter,
        on_trial=on_trial,
        total_trials=plan.num_trials,
        metric=dspy_metric,
        prompt_model=prompt_lm,
        task_model=task_lm,
        auto=plan.auto,
        num_candidates=None if plan.auto else plan.num_fewshot_candidates,
        max_bootstrapped_demos=spec.max_bootstrapped_demos,
        max_labeled_demos=spec.max_labeled_demos,
        num_threads=spec.num_threads,
        max_errors=len(data.train) + len(data.val) + 10,
        seed=spec.seed,
        metric_threshold=spec.min_score_for_gold,
        verbose=False,
    )
    trials = {} if plan.auto else {"num_trials": plan.num_trials, "minibatch": plan.minibatch}
    trainset = [_to_dspy(e, spec.input_fields) for e in data.train]
    valset = [_to_dspy(e, spec.input_fields) for e in data.val]
    with dspy.context(lm=task_lm, adapter=LenientAdapter(run.meter)):
        run.program = optimizer.compile(student, trainset=trainset, valset=valset, seed=spec.seed, **trials)
    run.trials_completed = optimizer.trials_completed
    score = getattr(run.program, "score", None)
    run.optimized_score = round(score / 100, 4) if isinstance(score, int | float) else optimizer.best_score


def _execute(run: _Run, report: Report) -> JobResult:
    spec, meter = run.spec, run.meter
    report(Stage(step="loading"))
    run.data = data = prepare_dataset(spec)
    task_lm = _make_lm(spec, spec.effective_task_model, meter)
    prompt_lm = _make_lm(spec, spec.teacher_model, meter)
    judge_lm = _make_lm(spec, spec.judge_model, meter) if uses_judge(spec.metric) else None
    check_endpoints([lm for lm in (task_lm, prompt_lm, judge_lm) if lm is not None])
    try:
        metric = build_metric(spec.metric, spec.metric_options, judge_lm)
    except MetricError as exc:
        raise JobFailed(JobFailure(kind="invalid_spec", error_message=str(exc))) from exc

    report(Stage(step="evaluating", detail=f"train {len(data.train)} / val {len(data.val)}"))
    fields = spec.input_fields
    run.baseline_text = spec.current_prompt or render_export(default_instructions(spec), [], fields)
    run.baseline_score, run.baseline_answers = score_prompt(
        run.baseline_text, data.val, spec, task_lm, metric
    )
    report(Baseline(score=run.baseline_score))
    _report_usage(report, meter)
    meter.check()

    mode = spec.auto if spec.max_trials is None else f"{spec.max_trials} trials"
    report(Stage(step="compiling", detail=f"MIPROv2 ({mode})"))
    _compile(run, report, task_lm, prompt_lm, metric)
    meter.check()

    report(Stage(step="exporting"))
    text = render_export(program_instructions(run.program), program_demos(run.program, fields), fields)
    export_score, after = score_prompt(text, data.val, spec, task_lm, metric)
    if isinstance(failing := meter.stop_reason(), EndpointFailing):
        raise failing  # the export's answers were errors, not measurements
    # A budget reached by the very last call, or a stop asked for now, no longer stops
    # anything: the job is done, and the result says whether the budget was reached.
    _report_usage(report, meter)
    return run.result(text, export_score, after)


def run_job(spec: JobSpec, report: Report, should_stop: Callable[[], bool]) -> JobResult:
    """Run one job; raise ``JobFailed`` (with a partial result where one exists) on failure."""
    meter = Meter(budget=spec.cost_budget, should_stop=should_stop)
    run = _Run(spec=spec, meter=meter)
    try:
        return _execute(run, report)
    except BudgetExhausted as exc:
        kept = (
            "the best prompt so far" if run.program is not None else "no better prompt yet; the current one"
        )
        raise run.failed("budget_exhausted", f"{exc}; {kept} is kept as an unscored draft") from exc
    except StopRequested as exc:
        raise run.failed("cancelled", str(exc)) from exc
    except EndpointFailing as exc:
        raise run.failed("llm_unreachable" if exc.unreachable else "llm_error", str(exc)) from exc
    except JobFailed:
        raise
    except Exception as exc:
        log.exception("job %s failed", spec.job_id)  # the traceback stays in the log, not in the event
        raise run.failed("error", f"optimization failed: {type(exc).__name__}: {str(exc)[:500]}") from exc
