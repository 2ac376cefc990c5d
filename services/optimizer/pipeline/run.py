"""One optimization job, end to end (``run_job``; the worker process calls it).

1. **loading** — gold examples, the train / validation (/ test) split, the label set and
   the metric (``label_match`` when the outputs form a label set, else the LLM judge,
   which must first show it can tell right answers from wrong ones).
2. **evaluating** — the prompt the application runs today, scored on validation under
   the task's contract.
3. **compiling** — MIPROv2 over prompt bodies under the contract: the baseline, grounded
   bodies and the teacher's vetted proposals, with demo sets; per-trial events.
4. **exporting** — rendered candidates (the optimizer's program, its instructions without
   demos, the grounded bodies, the baseline) re-scored outside DSPy on validation, which
   only screens: in ``RACE`` rounds the best so far (and always the baseline) are also
   scored on a further share of the training rows they do not show as demos, and the
   best over all its rows is the export. Then the baseline and the export on the
   held-out test split.

Every figure is measured by the job's :class:`Meter`. A spent budget, a stop request or a
dead endpoint ends the run at the next safe point with ``JobFailed``, keeping what was
measured (and the best prompt so far, as a draft) in ``partial``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import dspy

from services.optimizer.metering import BudgetExhausted, EndpointFailing, Meter, StopRequested
from services.optimizer.metrics import MetricError, MetricFn, build_metric, normalize, uses_judge
from services.optimizer.pipeline.candidates import (
    Candidate,
    Scored,
    TaskFacts,
    choose,
    finalists,
    grounded_bodies,
    is_valid_body,
    output_rule,
    render_file,
    shown_as_demo,
    strip_rendered_demos,
    wrap_instruction,
)
from services.optimizer.pipeline.dataset import Dataset, label_space, majority_rate, prepare_dataset
from services.optimizer.pipeline.dspy_pinned import (
    ContractAdapter,
    KaizenMIPRO,
    TaskProgram,
    as_dspy_examples,
    compile_gepa,
    metric_for_dspy,
    program_body,
    program_demos,
)
from services.optimizer.pipeline.models import check_endpoints, make_lm
from services.optimizer.pipeline.scoring import Scorer
from services.optimizer.spec import (
    Baseline,
    BeforeAfter,
    CandidateScore,
    Example,
    JobFailed,
    JobFailure,
    JobResult,
    JobSpec,
    ModelUsage,
    Progress,
    Stage,
    Trial,
    Usage,
)
from shared.llm.pricing import plan_mipro

log = logging.getLogger(__name__)

BEFORE_AFTER_EXAMPLES = 5
JUDGE_CHECK_PAIRS = 4
JUDGE_MIN_MARGIN = 0.3
# Below this gap between the best prompt and no prompt at all, the model is not listening.
IGNORED_PROMPT_MARGIN = 0.05
#: Successive halving over the training rows: (candidates kept, share of the training rows
#: they are scored on next). 8 of the screened are scored on half, the best 3 of those on
#: the other half: about the calls of 5 on all of it, for a net twice as wide.
RACE = ((8, 0.5), (3, 0.5))
Report = Callable[[Progress], None]


def default_instruction(spec: JobSpec) -> str:
    """The instruction of a task that has no prompt yet: its description, else its name and inputs.

    Deliberately plain (no label set, no rule learned from the data): it stands for "no
    prompt yet", and what the job learns is what the job reports as its improvement.
    """
    if spec.task_description.strip():
        return spec.task_description.strip()
    return f"{spec.task_name}: given the {', '.join(spec.input_fields)}, write the output. {output_rule([])}"


def baseline_body(spec: JobSpec) -> tuple[str, str | None]:
    """The prompt the application runs today, as a body; a note when it had to be replaced."""
    current, fields = spec.current_prompt, spec.input_fields
    if current and is_valid_body(spec.prompt_contract, current, fields):
        return current, None
    default = wrap_instruction(spec.prompt_contract, default_instruction(spec), fields)
    if not current:
        return default, None
    return default, (
        f"the active prompt is not a valid {spec.prompt_contract} prompt for this task's inputs; "
        "a default prompt served as the baseline"
    )


def resolve_metric(spec: JobSpec, labels: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The metric a run uses: the task's choice, or ``auto``'s."""
    options = dict(spec.metric_options)
    name = spec.metric
    if name == "auto":
        name = "label_match" if labels else "llm_judge"
    if name == "label_match" and "labels" not in options:
        if not labels:
            raise JobFailed(
                JobFailure(
                    kind="invalid_spec",
                    error_message="label_match needs a label set: the gold outputs are free text; "
                    "set metric_options.labels or choose another metric",
                )
            )
        options["labels"] = list(labels)
    return name, options


def check_judge(metric: MetricFn, examples: Sequence[Example], judge_model: str) -> None:
    """Fail the job when the judge cannot tell a right answer from a wrong one.

    Right: the reference itself, in other words ("The answer is: …"). Wrong: another
    example's reference with a different meaning. A judge that scores them alike would
    make every later score noise, so the job stops here and says so.
    """
    right: list[float] = []
    wrong: list[float] = []
    pool = list(examples)
    for i, example in enumerate(pool):
        others = [o for o in pool[i + 1 :] + pool[:i] if normalize(o.output) != normalize(example.output)]
        if not others or len(right) >= JUDGE_CHECK_PAIRS:
            continue
        right.append(metric(example.inputs, example.output, f"The answer is: {example.output}"))
        wrong.append(metric(example.inputs, example.output, others[0].output))
    if not right:
        return
    r, w = sum(right) / len(right), sum(wrong) / len(wrong)
    if r - w < JUDGE_MIN_MARGIN:
        raise JobFailed(
            JobFailure(
                kind="judge_unreliable",
                error_message=(
                    f"the judge model {judge_model} cannot tell right answers from wrong ones: it gave "
                    f"{r:.2f} on average to {len(right)} correct answers and {w:.2f} to {len(wrong)} wrong "
                    "ones; choose a stronger judge_model, or a metric such as exact_match or label_match "
                    "in evaluator_config"
                ),
            )
        )


@dataclass
class _Run:
    """What one run has measured so far; a failure turns it into a partial result."""

    spec: JobSpec
    meter: Meter
    started: float = field(default_factory=time.monotonic)
    data: Dataset | None = None
    metric_name: str = ""
    labels: list[str] = field(default_factory=list)
    baseline: Candidate | None = None
    baseline_score: float | None = None
    baseline_answers: list[str] = field(default_factory=list)
    program: Any = None
    optimized_score: float | None = None
    trials_completed: int = 0
    notes: list[str] = field(default_factory=list)
    scored: list[Scored] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def result(self, prompt_text: str, export_score: float | None, after: Sequence[str] = ()) -> JobResult:
        usage, data, spec = self.meter.snapshot(), self.data, self.spec
        val = data.val if data else []
        answers_after = list(after) + [None] * len(val)
        examples = [
            BeforeAfter(inputs=e.inputs, expected=e.output, before=before, after=answers_after[i])
            for i, (e, before) in enumerate(zip(val, self.baseline_answers, strict=False))
        ][:BEFORE_AFTER_EXAMPLES]
        incidents = self.meter.incidents
        program = self.program
        return JobResult(
            prompt_text=prompt_text,
            demos=program_demos(program, spec.input_fields) if program is not None else [],
            dspy_state=json.loads(json.dumps(program.dump_state(), default=str))
            if program is not None
            else {},
            baseline_score=self.baseline_score,
            optimized_score=self.optimized_score,
            export_score=export_score,
            train_size=len(data.train) if data else 0,
            val_size=len(val),
            test_size=len(data.test) if data else 0,
            trials_completed=self.trials_completed,
            llm_calls=usage.llm_calls,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=round(usage.cost_usd, 6),
            duration_seconds=round(time.monotonic() - self.started, 3),
            dspy_version=str(dspy.__version__),
            dataset_hash=data.dataset_hash if data else "",
            seed=spec.seed,
            examples=examples,
            budget_exhausted=self.meter.exhausted,
            excluded_examples=data.excluded if data else 0,
            parse_failures=incidents["parse_failures"],
            proposal_fallbacks=incidents["proposal_fallbacks"],
            proposals_dropped=incidents["proposals_dropped"],
            judge_failures=incidents["judge_failures"],
            failed_calls=usage.failed_calls,
            prompt_contract=spec.prompt_contract,
            optimizer="GEPA" if spec.optimizer == "gepa" else "MIPROv2",
            metric=self.metric_name,
            labels=self.labels,
            candidates=[
                CandidateScore(
                    name=s.candidate.name,
                    score=round(s.score, 4),
                    chars=len(s.text),
                    selection_score=round(s.selection, 4) if s.selection is not None else None,
                    selection_rows=s.selection_rows or None,
                )
                for s in self.scored
            ],
            notes=self.notes,
            **self.extra,
        )

    def failed(self, kind: str, message: str) -> JobFailed:
        """The failure to raise, with the best result so far as its partial."""
        return JobFailed(JobFailure(kind=kind, error_message=message, partial=self.draft()))

    def draft(self) -> JobResult:
        """The best prompt so far, not re-scored (a stop forbids more calls)."""
        spec = self.spec
        if self.program is not None:
            fields = spec.input_fields
            text = render_file(
                spec.prompt_contract, program_body(self.program), program_demos(self.program, fields), fields
            )
            return self.result(text, None)
        if self.baseline is not None:
            return self.result(self.baseline.body, None)
        return self.result("", None)


def _report_usage(report: Report, meter: Meter) -> None:
    usage = meter.snapshot()
    report(
        Usage(
            llm_calls=usage.llm_calls,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=round(usage.cost_usd, 6),
            by_model={
                model: ModelUsage(
                    llm_calls=calls,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cost_usd=round(cost, 6),
                )
                for model, (calls, prompt, completion, cost) in usage.by_model.items()
            },
        )
    )


def _facts(run: _Run) -> TaskFacts:
    spec = run.spec
    return TaskFacts(spec.task_name, spec.task_description, tuple(spec.input_fields), tuple(run.labels))


def _student(run: _Run) -> TaskProgram:
    """The program an optimizer starts from: the baseline's body, without a previous job's demos."""
    assert run.baseline is not None
    return TaskProgram(
        run.spec.input_fields,
        strip_rendered_demos(run.spec.prompt_contract, run.baseline.body, run.spec.input_fields),
    )


def _trial_reporter(run: _Run, report: Report) -> Callable[[Trial], None]:
    def on_trial(trial: Trial) -> None:
        run.trials_completed, run.optimized_score = trial.trial, trial.best
        report(trial)
        _report_usage(report, run.meter)

    return on_trial


def _compile(run: _Run, report: Report, task_lm: Any, prompt_lm: Any, metric: MetricFn) -> None:
    spec, data = run.spec, run.data
    assert data is not None
    plan = plan_mipro(len(data.val), spec.optimizer_settings())
    optimizer = KaizenMIPRO(
        meter=run.meter,
        facts=_facts(run),
        contract=spec.prompt_contract,
        grounded=grounded_bodies(spec.prompt_contract, _facts(run)),
        on_trial=_trial_reporter(run, report),
        total_trials=plan.num_trials,
        metric=metric_for_dspy(metric, spec.input_fields),
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
    adapter = ContractAdapter(run.meter, spec.prompt_contract, spec.input_fields)
    with dspy.context(lm=task_lm, adapter=adapter):
        run.program = optimizer.compile(
            _student(run),
            trainset=as_dspy_examples(data.train, spec.input_fields),
            valset=as_dspy_examples(data.val, spec.input_fields),
            seed=spec.seed,
            **trials,
        )
    run.trials_completed = optimizer.trials_completed
    score = getattr(run.program, "score", None)
    run.optimized_score = round(score / 100, 4) if isinstance(score, int | float) else optimizer.best_score


def _compile_gepa(run: _Run, report: Report, task_lm: Any, prompt_lm: Any, metric: MetricFn) -> None:
    """GEPA under the same contract, budgeted like MIPROv2: as many validation passes as trials."""
    spec, data = run.spec, run.data
    assert data is not None
    plan = plan_mipro(len(data.val), spec.optimizer_settings())
    adapter = ContractAdapter(run.meter, spec.prompt_contract, spec.input_fields)
    with dspy.context(lm=task_lm, adapter=adapter):
        run.program, progress = compile_gepa(
            _student(run),
            trainset=as_dspy_examples(data.train, spec.input_fields),
            valset=as_dspy_examples(data.val, spec.input_fields),
            metric=metric,
            meter=run.meter,
            facts=_facts(run),
            contract=spec.prompt_contract,
            reflection_lm=prompt_lm,
            on_trial=_trial_reporter(run, report),
            max_metric_calls=(plan.num_trials + 1) * len(data.val) + 6 * plan.num_trials,
            num_threads=spec.num_threads,
            seed=spec.seed,
        )
    run.trials_completed = progress.trials_completed
    run.optimized_score = progress.best_score


def export_candidates(run: _Run) -> list[Candidate]:
    """The export is chosen among: the optimized program, its body alone, grounded bodies, the baseline."""
    spec, fields = run.spec, run.spec.input_fields
    assert run.baseline is not None
    found = [run.baseline]
    if run.program is not None:
        body = program_body(run.program)
        demos = tuple(program_demos(run.program, fields))
        found.append(Candidate("optimized", body, demos))
        if demos:
            found.append(Candidate("optimized:no_demos", body))
    found += grounded_bodies(spec.prompt_contract, _facts(run))
    unique: dict[str, Candidate] = {}
    for candidate in found:  # the first name of a text wins: "baseline" over an unchanged program
        unique.setdefault(candidate_key(spec, candidate), candidate)
    return list(unique.values())


def candidate_key(spec: JobSpec, candidate: Candidate) -> str:
    return render_file(spec.prompt_contract, candidate.body, candidate.demos, spec.input_fields)


def _export(run: _Run, scorer: Scorer, report: Report) -> tuple[Scored, list[str]]:
    spec, data = run.spec, run.data
    assert data is not None
    candidates = export_candidates(run)
    report(Stage(step="exporting", detail=f"{len(candidates)} candidates", count=len(candidates)))
    answers: dict[str, list[str]] = {}
    for candidate in candidates:
        text = candidate_key(spec, candidate)
        score, answers[text] = scorer.score(text, data.val)
        run.scored.append(Scored(candidate, text, score))
        _report_usage(report, run.meter)
    final, widened = _race(run, scorer, run.scored)
    _report_usage(report, run.meter)
    run.scored = [widened.get(s.text, s) for s in run.scored]  # every finalist's widest score
    chosen = choose(final)
    if run.program is not None:  # the program as optimized, even when it renders like the baseline
        fields = spec.input_fields
        text = render_file(
            spec.prompt_contract, program_body(run.program), program_demos(run.program, fields), fields
        )
        program = next((s for s in run.scored if s.text == text), None)
        if program is not None:
            run.extra["program_export_score"] = round(program.score, 4)
    run.extra["chosen_candidate"] = chosen.candidate.name
    return chosen, answers[chosen.text]


def _race(run: _Run, scorer: Scorer, screened: Sequence[Scored]) -> tuple[list[Scored], dict[str, Scored]]:
    """The last round's finalists, and every candidate's widest score by text (``RACE``).

    For 100 examples: 8 candidates on 16 + 32 rows, then 3 of them on 16 + 64, against the
    16 rows of validation alone, on which candidates a few points apart are a coin toss.
    """
    data = run.data
    assert data is not None
    n = len(data.train)
    alive, start = list(screened), 0
    widened: dict[str, Scored] = {}
    for keep, share in RACE:
        alive = finalists(alive, keep)
        end = min(n, start + max(1, round(n * share)))
        alive = [_widened(run, scorer, s, data.train[start:end]) for s in alive]
        widened.update((s.text, s) for s in alive)
        start = end
    return alive, widened


def _widened(run: _Run, scorer: Scorer, scored: Scored, rows: Sequence[Example]) -> Scored:
    """``scored`` with ``rows`` (those it does not show as demos) added to the rows it is chosen by."""
    fields = run.spec.input_fields
    rows = [e for e in rows if not shown_as_demo(scored.candidate, e.inputs, fields)]
    if not rows:
        return scored
    mean, _ = scorer.score(scored.text, rows)
    counted = scored.selection_rows or len(run.data.val if run.data else [])
    before = scored.chosen_by
    total = counted + len(rows)
    return replace(scored, selection=(before * counted + mean * len(rows)) / total, selection_rows=total)


def _held_out(run: _Run, scorer: Scorer, chosen: Scored) -> None:
    """The baseline and the export on the test split, and always-the-majority-label for scale."""
    data = run.data
    assert data is not None and run.baseline is not None
    if not data.test:
        return
    baseline_text = candidate_key(run.spec, run.baseline)
    run.extra["test_baseline_score"] = round(scorer.score(baseline_text, data.test)[0], 4)
    run.extra["test_export_score"] = round(scorer.score(chosen.text, data.test)[0], 4)
    majority = majority_rate(data.test, run.labels)
    if majority is not None:
        run.extra["test_majority_score"] = round(majority, 4)


def _check_listening(run: _Run, scorer: Scorer, chosen: Scored) -> None:
    """Under ``system``, say plainly when the model does not follow system prompts.

    Two measured controls on validation: the inputs with no prompt at all, and the chosen
    instruction moved into the user message (what the ``template`` contract would send).
    """
    data = run.data
    if run.spec.prompt_contract != "system" or data is None:
        return
    control = scorer.score_without_prompt(data.val)
    in_user = scorer.score_in_user_message(chosen.candidate.body, data.val)
    run.extra["no_prompt_score"] = round(control, 4)
    run.extra["user_message_score"] = round(in_user, 4)
    best = max(s.score for s in run.scored)
    if best - control < IGNORED_PROMPT_MARGIN or in_user - best >= IGNORED_PROMPT_MARGIN:
        run.notes.append(
            f"the task model largely ignores system prompts: on validation it scores {control:.2f} with "
            f"no prompt, at best {best:.2f} with a system prompt, and {in_user:.2f} with the same "
            "instruction in the user message; the template or messages contract lets the prompt reach it"
        )


def _execute(run: _Run, report: Report) -> JobResult:
    spec, meter = run.spec, run.meter
    report(Stage(step="loading"))
    run.data = data = prepare_dataset(spec)
    run.labels = label_space(data.outputs)
    run.metric_name, options = resolve_metric(spec, run.labels)
    task_lm = make_lm(spec, spec.effective_task_model, meter)
    prompt_lm = make_lm(spec, spec.teacher_model, meter)
    judge_lm = make_lm(spec, spec.judge_model, meter) if uses_judge(run.metric_name) else None
    check_endpoints([lm for lm in (task_lm, prompt_lm, judge_lm) if lm is not None])
    try:
        metric = build_metric(run.metric_name, options, judge_lm)
    except MetricError as exc:
        raise JobFailed(JobFailure(kind="invalid_spec", error_message=str(exc))) from exc
    adapter = ContractAdapter(meter, spec.prompt_contract, spec.input_fields)
    if judge_lm is not None:
        with dspy.context(adapter=adapter):
            check_judge(metric, [*data.train, *data.val], spec.judge_model)
    scorer = Scorer(spec, task_lm, metric, adapter)

    detail = f"train {len(data.train)} / val {len(data.val)}" + (
        f" / test {len(data.test)}" if data.test else ""
    )
    report(Stage(step="evaluating", detail=detail))
    body, note = baseline_body(spec)
    if note:
        run.notes.append(note)
    run.baseline = Candidate("baseline", body)
    score, run.baseline_answers = scorer.score(candidate_key(spec, run.baseline), data.val)
    run.baseline_score = round(score, 4)
    report(Baseline(score=run.baseline_score))
    _report_usage(report, meter)
    meter.check()

    mode = spec.auto if spec.max_trials is None else f"{spec.max_trials} trials"
    name = "GEPA" if spec.optimizer == "gepa" else "MIPROv2"
    report(Stage(step="compiling", detail=f"{name} ({mode}), {spec.prompt_contract} contract"))
    compile_step = _compile_gepa if spec.optimizer == "gepa" else _compile
    compile_step(run, report, task_lm, prompt_lm, metric)
    meter.check()

    chosen, after = _export(run, scorer, report)
    _held_out(run, scorer, chosen)
    _check_listening(run, scorer, chosen)
    if isinstance(failing := meter.stop_reason(), EndpointFailing):
        raise failing  # the export's answers were errors, not measurements
    # A budget reached by the very last call, or a stop asked for now, no longer stops
    # anything: the job is done, and the result says whether the budget was reached.
    return run.result(chosen.text, round(chosen.score, 4), after)


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
    finally:
        _report_usage(report, meter)  # every call is in a usage line, whatever the ending
