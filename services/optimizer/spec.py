"""What an optimization job is given, what it reports while running, and what it returns.

``JobSpec`` goes into the worker (as one JSON document on stdin), ``Progress`` events
and one ``ResultMessage`` or ``FailureMessage`` come out (one JSON object per line).
All models are frozen and reject unknown fields, like our events.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_serializer, field_validator

from shared.events.tasks import OptimizerName, PromptContract
from shared.llm.embedded import LITELLM_MODEL
from shared.llm.pricing import OptimizerSettings

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kinds of failure this package reports; consumers may add their own (e.g. worker_lost).
FAILURE_KINDS = (
    "cancelled",
    "timeout",
    "budget_exhausted",
    "llm_unreachable",
    "llm_error",
    "too_few_examples",
    "invalid_spec",
    "crashed",
    "error",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelEndpoint(_Frozen):
    """Where a LiteLLM model string is served, and optionally what the operator pays for it.

    A price set here overrides every other price (e.g. a self-hosted GPU model billed
    per token). ``api_key`` is masked in ``repr`` and logs; it is written out only in
    JSON mode, which is how the spec reaches the worker process.
    """

    api_base: str | None = None
    api_key: SecretStr | None = None
    input_usd_per_million: float | None = Field(None, ge=0)
    output_usd_per_million: float | None = Field(None, ge=0)

    @field_serializer("api_key", when_used="json")
    def _reveal_key_for_worker(self, key: SecretStr | None) -> str | None:
        return key.get_secret_value() if key is not None else None


class Example(_Frozen):
    """One scored output: the task's inputs, what the LLM answered, and the user's score in [0, 1]."""

    inputs: dict[str, str]
    output: str
    score: float = Field(ge=0.0, le=1.0)
    source: str = "feedback"

    def canonical_json(self) -> str:
        data = self.model_dump(mode="json")
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dataset_hash(examples: Sequence[Example]) -> str:
    """sha256 of the examples' canonical JSON, independent of the order they arrived in."""
    canonical = "[" + ",".join(sorted(e.canonical_json() for e in examples)) + "]"
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class JobSpec(_Frozen):
    """Everything the worker needs to run one job; nothing is read from elsewhere."""

    job_id: uuid.UUID
    task_id: uuid.UUID
    task_name: str
    task_description: str = ""
    input_fields: list[str] = Field(min_length=1)
    prompt_contract: PromptContract = "system"
    optimizer: OptimizerName = "mipro"
    module_type: Literal["predict", "chain_of_thought"] = "predict"
    teacher_model: str = LITELLM_MODEL
    judge_model: str = LITELLM_MODEL
    task_model: str | None = Field(None, description="The model the application runs; None: the teacher.")
    models: dict[str, ModelEndpoint] = Field(default_factory=dict)
    metric: str = Field(
        "auto", description="auto: label_match when the outputs form a label set, else llm_judge."
    )
    metric_options: dict[str, Any] = Field(default_factory=dict)
    examples: list[Example]
    current_prompt: str | None = None
    cost_budget: float | None = Field(None, ge=0)
    auto: Literal["light", "medium", "heavy"] = "light"
    max_trials: int | None = Field(None, ge=1)
    max_bootstrapped_demos: int = Field(4, ge=0, le=16)
    max_labeled_demos: int = Field(4, ge=0, le=16)
    min_score_for_gold: float = Field(0.7, ge=0.0, le=1.0)
    seed: int = 0
    time_limit_seconds: float = Field(3600, gt=0)
    num_threads: int = Field(2, ge=1, le=16)
    max_tokens: int = Field(512, ge=16, le=16384, description="Cap on every answer of every model.")

    @field_validator("input_fields")
    @classmethod
    def _fields_are_identifiers(cls, fields: list[str]) -> list[str]:
        for name in fields:
            if not _IDENTIFIER.match(name) or name == "output":
                raise ValueError(f"input field {name!r} must be an identifier other than 'output'")
        if len(set(fields)) != len(fields):
            raise ValueError("input fields must be unique")
        return fields

    @property
    def effective_task_model(self) -> str:
        return self.task_model or self.teacher_model

    def usable_examples(self) -> list[Example]:
        """The gold examples a run learns from and is measured on (see ``pipeline.prepare_dataset``).

        Scored at least ``min_score_for_gold``, every input field present and non-empty,
        a non-empty output. Everything else is excluded, never taught as an answer.
        """
        return [
            e
            for e in self.examples
            if e.score >= self.min_score_for_gold
            and e.output.strip()
            and all(e.inputs.get(name, "").strip() for name in self.input_fields)
        ]

    def dataset_hash(self) -> str:
        """The hash of this job's examples (all of them, before filtering)."""
        return dataset_hash(self.examples)

    def endpoint(self, model: str) -> ModelEndpoint:
        """The configured endpoint of ``model`` (an empty one: the provider's default)."""
        return self.models.get(model, ModelEndpoint())

    def optimizer_settings(self) -> OptimizerSettings:
        """The settings the cost estimate and the MIPROv2 plan are derived from."""
        return OptimizerSettings(
            auto=self.auto,
            max_trials=self.max_trials,
            max_bootstrapped_demos=self.max_bootstrapped_demos,
            max_labeled_demos=self.max_labeled_demos,
            metric=self.metric,
            task_model=self.task_model,
        )


class Stage(_Frozen):
    """The job entered a step."""

    type: Literal["stage"] = "stage"
    step: Literal["loading", "evaluating", "compiling", "exporting"]
    detail: str = ""
    #: How many things the step works through, where it counts them (exporting: candidates).
    count: int | None = None


class Baseline(_Frozen):
    """The current prompt's score on the validation set, called as the application calls it."""

    type: Literal["baseline"] = "baseline"
    score: float


class Trial(_Frozen):
    """A MIPROv2 trial was evaluated (scores in [0, 1])."""

    type: Literal["trial"] = "trial"
    trial: int
    score: float
    best: float
    total: int | None = None


class ModelUsage(_Frozen):
    """Totals so far of the job's calls to one model."""

    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class Usage(_Frozen):
    """Totals so far of every LLM call the job made, and the same split by model."""

    type: Literal["usage"] = "usage"
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    by_model: dict[str, ModelUsage] = Field(default_factory=dict)


Progress = Annotated[Stage | Baseline | Trial | Usage, Field(discriminator="type")]


class BeforeAfter(_Frozen):
    """One validation example answered with the current prompt and with the exported one."""

    inputs: dict[str, str]
    expected: str
    before: str
    after: str | None = None


class CandidateScore(_Frozen):
    """One rendered prompt the export was chosen among: its validation score and, for a
    finalist, the score it was chosen by (validation plus the training rows it does not show)."""

    name: str
    score: float
    chars: int
    selection_score: float | None = None
    selection_rows: int | None = None


class JobResult(_Frozen):
    """A finished (or, inside a failure, partial) job: the prompt and every measured figure.

    Scores are in [0, 1]. ``baseline_score``, ``export_score`` and every candidate's score
    are on the validation set and call the model the way the application does (the task's
    prompt contract); ``optimized_score`` is the optimizer's best in-DSPy score and
    ``program_export_score`` the re-score of that very program's rendering. ``test_*`` are
    on the held-out test split nothing else saw. None means "not measured".
    """

    prompt_text: str
    demos: list[dict[str, str]] = Field(default_factory=list)
    dspy_state: dict[str, Any] = Field(default_factory=dict)
    baseline_score: float | None
    optimized_score: float | None
    export_score: float | None
    train_size: int
    val_size: int
    trials_completed: int
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    duration_seconds: float
    dspy_version: str
    dataset_hash: str
    seed: int
    optimizer: Literal["MIPROv2", "GEPA"] = "MIPROv2"
    prompt_contract: PromptContract = "system"
    metric: str = ""
    labels: list[str] = Field(default_factory=list)
    test_size: int = 0
    test_baseline_score: float | None = None
    test_export_score: float | None = None
    test_majority_score: float | None = None
    program_export_score: float | None = None
    no_prompt_score: float | None = None
    user_message_score: float | None = None
    chosen_candidate: str = ""
    candidates: list[CandidateScore] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    proposals_dropped: int = 0
    examples: list[BeforeAfter] = Field(default_factory=list)
    budget_exhausted: bool = False
    excluded_examples: int = Field(0, description="Examples not used: below min_score_for_gold or malformed.")
    parse_failures: int = Field(0, description="Answers DSPy could not parse; their raw text was scored.")
    proposal_fallbacks: int = Field(0, description="Proposals replaced by the original instruction.")
    judge_failures: int = Field(0, description="Judge replies without a usable score (scored 0).")
    failed_calls: int = Field(0, description="LLM calls that failed after retries; their example scored 0.")


class JobFailure(_Frozen):
    """Why a job failed, in words a person can act on, plus what was measured before."""

    error_message: str
    kind: str = Field(description="One of FAILURE_KINDS here; consumers may add their own.")
    partial: JobResult | None = None


class JobFailed(Exception):
    """Raised by the pipeline and the subprocess runner; carries the ``JobFailure``."""

    def __init__(self, failure: JobFailure) -> None:
        super().__init__(failure.error_message)
        self.failure = failure


class ResultMessage(_Frozen):
    """The worker's last line on success."""

    type: Literal["result"] = "result"
    result: JobResult


class FailureMessage(_Frozen):
    """The worker's last line on failure."""

    type: Literal["failure"] = "failure"
    failure: JobFailure


WorkerLine = Annotated[
    Stage | Baseline | Trial | Usage | ResultMessage | FailureMessage, Field(discriminator="type")
]
worker_line_adapter: TypeAdapter[WorkerLine] = TypeAdapter(WorkerLine)
progress_adapter: TypeAdapter[Progress] = TypeAdapter(Progress)
