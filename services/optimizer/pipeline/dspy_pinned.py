"""Every use of DSPy internals, in one module, for the DSPy version pinned in pyproject (3.4.x).

- :class:`ContractAdapter` calls the model for the task *exactly* as the application
  does: the signature's instructions are a prompt body under the task's contract, the
  predictor's demos are rendered into it by :func:`candidates.render_file`, and the
  messages come from :func:`shared.prompt_contract.render_messages`. The raw reply is the
  answer. So MIPROv2's in-DSPy scores are scores of the file we export.
- Every other signature (the proposer's, the judge's) goes through DSPy's own adapters,
  leniently: an unparseable reply gives empty outputs, never an exception.
- :class:`KaizenMIPRO` overrides MIPROv2's private step 2 (instruction proposals) and its
  per-trial logging hooks; :class:`_VettedProposer` overrides ``GroundedProposer``.
  Upgrading DSPy means re-reading exactly these overrides.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dspy
from dspy.clients._deprecation import adapter_message_call
from dspy.propose import GroundedProposer
from dspy.teleprompt.mipro_optimizer_v2 import BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT
from dspy.utils.exceptions import AdapterParseError

from services.optimizer.metering import Meter, RunStopped
from services.optimizer.pipeline.candidates import (
    Candidate,
    TaskFacts,
    is_valid_body,
    render_file,
    vet_proposal,
    wrap_instruction,
)
from services.optimizer.spec import Trial
from shared.events.tasks import PromptContract
from shared.prompt_contract import render_messages

log = logging.getLogger(__name__)


def _reply_text(output: Any) -> str:
    """The text of one LM output (DSPy returns strings, or dicts with ``text``)."""
    if isinstance(output, dict):
        return str(output.get("text") or "")
    return str(output or "")


def demo_dicts(demos: Sequence[Any], fields: Sequence[str]) -> list[dict[str, str]]:
    """Demos as plain ``{input fields…, output}`` dicts; incomplete ones are left out."""
    out: list[dict[str, str]] = []
    for demo in demos:
        values = dict(demo.items()) if hasattr(demo, "items") else dict(demo)
        if all(values.get(name) for name in fields) and values.get("output"):
            out.append({**{name: str(values[name]) for name in fields}, "output": str(values["output"])})
    return out


class ContractAdapter(dspy.ChatAdapter):  # type: ignore[misc]
    """The task's calls under its prompt contract; everything else through DSPy's adapters, leniently."""

    def __init__(self, meter: Meter, contract: PromptContract, fields: Sequence[str]) -> None:
        super().__init__()
        self.meter, self.contract, self.fields = meter, contract, tuple(fields)
        self._structured = dspy.JSONAdapter()

    def is_task(self, signature: Any) -> bool:
        return "output" in signature.output_fields and tuple(signature.input_fields) == self.fields

    def __call__(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: Any, inputs: Any) -> Any:
        if self.is_task(signature):
            return self._task_call(lm, lm_kwargs, signature, demos, inputs)
        try:
            if lm.supports_response_schema:
                return self._structured(lm, lm_kwargs, signature, demos, inputs)
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError:
            return [dict.fromkeys(signature.output_fields, "")]  # a failed proposal or judgement

    def _task_call(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: Any, inputs: Any) -> Any:
        body = str(signature.instructions)
        if not is_valid_body(self.contract, body, self.fields):
            body = wrap_instruction(self.contract, body, self.fields)
        text = render_file(self.contract, body, demo_dicts(demos, self.fields), self.fields)
        values = {name: str(inputs[name]) for name in self.fields}
        messages = render_messages(self.contract, text, values, self.fields)
        with adapter_message_call(lm, messages):  # DSPy 3.4's marker for an adapter's own messages call
            outputs = lm(messages=messages, **lm_kwargs)
        empty = dict.fromkeys(signature.output_fields, "")
        return [{**empty, "output": _reply_text(o).strip()} for o in outputs]


def with_gold_outputs(demo_sets: Any, trainset: Sequence[Any], fields: Sequence[str]) -> Any:
    """Bootstrapped demos, each showing its example's gold output instead of the model's reply.

    A bootstrapped demo is a training example the model answered well enough for the
    metric (``the sentiment of this review can be classified as positive …``). The file
    then teaches that reply's form; the gold output (``positive``) is what the users
    scored as right, so that is what a demo shows.
    """
    if not demo_sets:
        return demo_sets
    gold = {tuple(str(e[name]) for name in fields): e.output for e in trainset}
    for sets in demo_sets.values():
        for demo_set in sets:
            for i, demo in enumerate(demo_set):
                key = tuple(str(demo.get(name, "")) for name in fields)
                if key in gold and demo.get("output") != gold[key]:
                    demo_set[i] = demo.copy(output=gold[key])
    return demo_sets


class TaskProgram(dspy.Module):  # type: ignore[misc]
    """The task as a DSPy program: the input fields in, ``output`` out; instructions = a prompt body."""

    def __init__(self, input_fields: Sequence[str], body: str) -> None:
        super().__init__()
        fields: dict[str, Any] = {name: (str, dspy.InputField()) for name in input_fields}
        fields["output"] = (str, dspy.OutputField())
        self.answer = dspy.Predict(dspy.Signature(fields, body))

    def forward(self, **inputs: str) -> Any:
        return self.answer(**inputs)


def program_body(program: Any) -> str:
    return "\n\n".join(str(p.signature.instructions).strip() for _, p in program.named_predictors())


def program_demos(program: Any, fields: Sequence[str]) -> list[dict[str, str]]:
    demos: list[dict[str, str]] = []
    for _, predictor in program.named_predictors():
        demos += demo_dicts(predictor.demos, fields)
    return demos


class _VettedProposer(GroundedProposer):  # type: ignore[misc]
    """MIPROv2's proposer; a failed, off-task or degenerate proposal is dropped and counted."""

    def __init__(self, *, meter: Meter, facts: TaskFacts, contract: PromptContract, **kwargs: Any) -> None:
        self.meter, self.facts, self.contract = meter, facts, contract  # first: the parent calls the LM
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
        if not proposed:
            self.meter.note("proposal_fallbacks")  # the teacher gave nothing usable
            return original
        reason = vet_proposal(proposed, self.facts)
        if reason is not None:
            self.meter.note("proposals_dropped")
            log.info("teacher proposal dropped (%s): %.80r", reason, proposed)
            return original
        return wrap_instruction(self.contract, proposed, self.facts.input_fields)


class KaizenMIPRO(dspy.MIPROv2):  # type: ignore[misc]
    """MIPROv2 with vetted proposals plus grounded candidates, per-trial progress, stops at trial ends."""

    def __init__(
        self,
        *,
        meter: Meter,
        facts: TaskFacts,
        contract: PromptContract,
        grounded: Sequence[Candidate],
        on_trial: Callable[[Trial], None],
        total_trials: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.meter, self.facts, self.contract, self.grounded = meter, facts, contract, list(grounded)
        self.on_trial, self.total_trials = on_trial, total_trials
        self.trials_completed = 0
        self.best_score: float | None = None

    def _bootstrap_fewshot_examples(
        self, program: Any, trainset: list[Any], *args: Any, **kwargs: Any
    ) -> Any:
        demos = super()._bootstrap_fewshot_examples(program, trainset, *args, **kwargs)
        self.meter.check()  # a safe point: nothing half-done to lose
        return with_gold_outputs(demos, trainset, self.facts.input_fields)

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
        # MIPROv2's own step 2, with the vetted proposer, then grounded bodies added.
        proposer = _VettedProposer(
            meter=self.meter,
            facts=self.facts,
            contract=self.contract,
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
        proposed: dict[int, list[str]] = proposer.propose_instructions_for_program(
            trainset=trainset,
            program=program,
            demo_candidates=demo_candidates,
            N=num_instruct_candidates,
            trial_logs={},
        )
        candidates: dict[int, list[str]] = {}
        for i, predictor in enumerate(program.predictors()):
            ordered = [str(predictor.signature.instructions), *(c.body for c in self.grounded), *proposed[i]]
            fields = self.facts.input_fields
            candidates[i] = list(dict.fromkeys(b for b in ordered if is_valid_body(self.contract, b, fields)))
        self.meter.check()
        return candidates

    # MIPROv2 (DSPy 3.4) calls one of these two private methods after each trial's
    # evaluation, with the optuna trial among the arguments: our per-trial hook.
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


def as_dspy_examples(examples: Sequence[Any], fields: Sequence[str]) -> list[Any]:
    return [
        dspy.Example(**{n: e.inputs[n] for n in fields}, output=e.output).with_inputs(*fields)
        for e in examples
    ]


def metric_for_dspy(metric: Callable[[Mapping[str, str], str, str], float], fields: Sequence[str]) -> Any:
    def dspy_metric(example: Any, prediction: Any, trace: Any = None) -> float:
        inputs = {name: str(example[name]) for name in fields}
        return metric(inputs, str(example.output), str(getattr(prediction, "output", "") or ""))

    return dspy_metric


# ----------------------------------------------------------------------------- GEPA


class _ImproveInstruction(dspy.Signature):  # type: ignore[misc]
    """Rewrite the instruction of a task so that a model following it gives the expected answers.
    Keep it short and about the task; mention the allowed answers when there is a fixed set."""

    task: str = dspy.InputField(desc="what the task is about")
    current_instruction: str = dspy.InputField()
    examples_with_feedback: str = dspy.InputField(desc="inputs, the answers given, and what was expected")
    new_instruction: str = dspy.OutputField()


class _VettedReflection:
    """GEPA's instruction proposer: the reflection LM rewrites the instruction, then it is vetted.

    An off-task or degenerate rewrite is dropped and counted; the current body is kept.
    """

    def __init__(self, *, meter: Meter, facts: TaskFacts, contract: PromptContract, lm: Any) -> None:
        self.meter, self.facts, self.contract, self.lm = meter, facts, contract, lm
        self.improve = dspy.Predict(_ImproveInstruction)

    def __call__(
        self,
        candidate: dict[str, str],
        reflective_dataset: Mapping[str, Sequence[Any]],
        components_to_update: list[str],
    ) -> dict[str, str]:
        datasets = reflective_dataset
        return {name: self._rewrite(candidate[name], datasets.get(name, ())) for name in components_to_update}

    def _rewrite(self, body: str, records: Sequence[Any]) -> str:
        shown = "\n\n".join(
            "\n".join(f"{k}: {str(v)[:300]}" for k, v in dict(r).items()) for r in list(records)[:3]
        )
        task = f"{self.facts.name}: {self.facts.description}".strip(": ")
        try:
            with dspy.context(lm=self.lm):
                reply = self.improve(task=task, current_instruction=body, examples_with_feedback=shown)
            proposed = re.sub(r"\[\[ ## \w+ ## \]\]", "", str(reply.new_instruction or "")).strip()
        except RunStopped:
            raise
        except Exception as exc:
            log.warning("GEPA reflection failed, keeping the current instruction: %s", exc)
            proposed = ""
        if not proposed:
            self.meter.note("proposal_fallbacks")
            return body
        if vet_proposal(proposed, self.facts) is not None:
            self.meter.note("proposals_dropped")
            return body
        if is_valid_body(self.contract, proposed, self.facts.input_fields):
            return proposed
        return wrap_instruction(self.contract, proposed, self.facts.input_fields)


class _GepaProgress:
    """GEPA callback: each candidate evaluated on the validation set is a trial."""

    def __init__(self, meter: Meter, on_trial: Callable[[Trial], None]) -> None:
        self.meter, self.on_trial = meter, on_trial
        self.trials_completed = 0
        self.best_score: float | None = None

    def on_valset_evaluated(self, event: Mapping[str, Any]) -> None:
        if self.meter.stop_reason() is not None:
            return  # calls were refused mid-evaluation: not a measurement
        score = float(event["average_score"])
        self.trials_completed += 1
        self.best_score = max(self.best_score or 0.0, round(score, 4))
        self.on_trial(Trial(trial=self.trials_completed, score=round(score, 4), best=self.best_score))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda event: None  # every other GEPA event is of no interest here
        raise AttributeError(name)


def gepa_feedback_metric(
    metric: Callable[[Mapping[str, str], str, str], float], fields: Sequence[str]
) -> Any:
    """GEPA's five-argument metric: our score, plus feedback text the reflection LM reads."""

    def feedback_metric(
        gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
    ) -> Any:
        inputs = {name: str(gold[name]) for name in fields}
        answer = str(getattr(pred, "output", "") or "")
        score = metric(inputs, str(gold.output), answer)
        verdict = "right" if score >= 1.0 else "wrong"
        feedback = (
            f"The answer {answer[:200]!r} is {verdict}; the expected answer is {str(gold.output)[:200]!r}."
        )
        return dspy.Prediction(score=score, feedback=feedback)

    return feedback_metric


def compile_gepa(
    student: Any,
    *,
    trainset: list[Any],
    valset: list[Any],
    metric: Callable[[Mapping[str, str], str, str], float],
    meter: Meter,
    facts: TaskFacts,
    contract: PromptContract,
    reflection_lm: Any,
    on_trial: Callable[[Trial], None],
    max_metric_calls: int,
    num_threads: int,
    seed: int,
) -> tuple[Any, _GepaProgress]:
    """DSPy's GEPA with our vetted reflection, per-candidate trials and stops at iteration ends."""
    progress = _GepaProgress(meter, on_trial)
    optimizer = dspy.GEPA(
        metric=gepa_feedback_metric(metric, facts.input_fields),
        max_metric_calls=max_metric_calls,
        reflection_lm=reflection_lm,
        instruction_proposer=_VettedReflection(meter=meter, facts=facts, contract=contract, lm=reflection_lm),
        num_threads=num_threads,
        seed=seed,
        warn_on_score_mismatch=False,
        gepa_kwargs={
            "callbacks": [progress],
            "stop_callbacks": [lambda state: meter.stop_reason() is not None],
        },
    )
    program = optimizer.compile(student, trainset=trainset, valset=valset)
    return program, progress
