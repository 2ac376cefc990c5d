"""Prices, the dataset split and the pre-run cost estimate of an optimization job.

The API imports this module to answer ``POST /optimize`` with an estimate, so it must
stay light: no dspy, no litellm import. Prices come from LiteLLM's bundled price map
(read as a JSON file when litellm is not loaded, so nothing is fetched), then from a
small table of common hosted models, and are **zero** for the embedded model and any
model served from a loopback address (it runs on our own CPU).

The estimate follows the same split (:func:`split_sizes`) and the same MIPROv2 settings
(:func:`plan_mipro`) that ``services.optimizer.pipeline`` really uses, so the two cannot
drift apart silently (``tests/unit/test_pricing.py`` checks the plan against DSPy).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

EMBEDDED_MODEL = "openai/smollm2"
TRAIN_SHARE_PERCENT = 80
MIN_USABLE_EXAMPLES = 10

# Mirrors dspy.teleprompt.mipro_optimizer_v2 (DSPy 3.4); a unit test compares them.
AUTO_RUN_SETTINGS: dict[str, dict[str, int]] = {
    "light": {"n": 6, "val_size": 100},
    "medium": {"n": 12, "val_size": 300},
    "heavy": {"n": 18, "val_size": 1000},
}
MIN_MINIBATCH_SIZE = 50
MINIBATCH_SIZE = 35
MINIBATCH_FULL_EVAL_STEPS = 5
BOOTSTRAPPED_DEMOS_FOR_ZEROSHOT = 3

# Assumptions of the estimate (documented, not measured): average tokens per call and
# the share of bootstrap attempts that pass the metric.
TASK_CALL_TOKENS = (700, 80)  # instructions + up to 4 demos + input; a short answer
PROPOSER_CALL_TOKENS = (1500, 250)  # dataset/program summaries, demos, a new instruction
JUDGE_CALL_TOKENS = (450, 20)  # inputs + reference + candidate; a score
BOOTSTRAP_SUCCESS_RATE = 0.5

# USD per 1M tokens (input, output): list prices of common hosted models, used when
# LiteLLM's price map lacks them (it drops retired aliases such as claude-3-5-sonnet).
FALLBACK_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-3.5-turbo": (0.50, 1.50),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-opus": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "gemini-1.5-flash": (0.075, 0.30),
    "gemini-1.5-pro": (1.25, 5.00),
    "gemini-2.0-flash": (0.10, 0.40),
}


@dataclass(frozen=True)
class Price:
    """USD per one million input and output tokens."""

    input_per_million: float
    output_per_million: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


FREE = Price(0.0, 0.0)


def is_local(model: str, api_base: str | None = None) -> bool:
    """True for the embedded model and for any model served from a loopback address."""
    if model == EMBEDDED_MODEL:
        return True
    if not api_base:
        return False
    host = urlparse(api_base).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def _bundled_price_map() -> dict[str, Any]:
    """LiteLLM's offline price map, read as data so that litellm need not be imported."""
    spec = importlib.util.find_spec("litellm")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "model_prices_and_context_window_backup.json"
        if path.is_file():
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return data
    return {}


def _price_map() -> dict[str, Any]:
    # Once litellm is loaded its live map also holds models registered at run time.
    litellm = sys.modules.get("litellm")
    live = getattr(litellm, "model_cost", None) if litellm is not None else None
    return live if isinstance(live, dict) and live else _bundled_price_map()


def _from_price_map(model: str) -> Price | None:
    entries = _price_map()
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for key in candidates:
        entry = entries.get(key)
        if isinstance(entry, dict):
            cost_in, cost_out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
            if isinstance(cost_in, int | float) and isinstance(cost_out, int | float):
                return Price(cost_in * 1e6, cost_out * 1e6)
    return None


def _from_fallback_table(model: str) -> Price | None:
    name = model.rsplit("/", 1)[-1].lower()
    name = re.sub(r"(-latest|-\d{8}(-v\d+(:\d+)?)?|@\d{8})$", "", name)
    prices = FALLBACK_PRICES.get(name)
    return Price(*prices) if prices else None


def model_price(model: str, api_base: str | None = None) -> Price | None:
    """The price of ``model`` (a LiteLLM model string), or None when it is unknown."""
    if is_local(model, api_base):
        return FREE
    return _from_price_map(model) or _from_fallback_table(model)


def split_sizes(n: int) -> tuple[int, int]:
    """The 80/20 train/validation split: validation gets ceil(20 %), so 52 → (41, 11)."""
    if n < 2:
        return (max(n, 0), 0)
    val = -(-n * (100 - TRAIN_SHARE_PERCENT) // 100)  # integer ceil: no float rounding
    return (n - val, val)


# 60, not fewer: the seed page's example job (52 examples → 41 / 11) keeps its numbers,
# and a test split of 12 is the smallest that says more than noise.
TEST_SPLIT_MIN = 60
# Rendered candidates the export is chosen among, at most: the optimized program, its body
# without demos, and the grounded bodies (four instructions in two layouts); the baseline
# is scored once more on top.
EXPORT_CANDIDATES = 10


def three_way_sizes(n: int) -> tuple[int, int, int]:
    """(train, val, test) for ``n`` usable examples.

    Below :data:`TEST_SPLIT_MIN` it is the seed page's 80 / 20 train / validation split
    and no test split. From there on a fifth (ceil) is held out for test first, and the
    rest is split 80 / 20.
    """
    if n < TEST_SPLIT_MIN:
        train, val = split_sizes(n)
        return train, val, 0
    test = -(-n // 5)
    train, val = split_sizes(n - test)
    return train, val, test


@dataclass(frozen=True)
class OptimizerSettings:
    """The knobs of a run that change its LLM call count."""

    auto: Literal["light", "medium", "heavy"] = "light"
    max_trials: int | None = None
    max_bootstrapped_demos: int = 4
    max_labeled_demos: int = 4
    metric: str = "auto"
    task_model: str | None = None  # None: the teacher model also answers the task


@dataclass(frozen=True)
class MiproPlan:
    """MIPROv2's effective settings for one run (what ``auto`` would pick, or ours)."""

    auto: str | None
    num_trials: int
    num_fewshot_candidates: int
    num_instruct_candidates: int
    eval_size: int
    minibatch: bool


def plan_mipro(val_size: int, settings: OptimizerSettings, n_predictors: int = 1) -> MiproPlan:
    """MIPROv2's settings: DSPy's ``auto`` presets, or ``max_trials`` with a fitting candidate count.

    With ``max_trials`` the candidate count follows MIPROv2's own rule of thumb
    (trials ≈ 1.5 × candidates), at least 3 (DSPy reserves three demo sets), at most
    what ``auto`` would use.
    """
    zeroshot = settings.max_bootstrapped_demos == 0 and settings.max_labeled_demos == 0
    auto_n = AUTO_RUN_SETTINGS[settings.auto]["n"]
    if settings.max_trials is None:
        eval_size = min(val_size, AUTO_RUN_SETTINGS[settings.auto]["val_size"])
        variables = n_predictors * (1 if zeroshot else 2)
        trials = int(max(2 * variables * math.log2(auto_n), 1.5 * auto_n))
        instruct = auto_n if zeroshot else int(auto_n * 0.5)
        return MiproPlan(settings.auto, trials, auto_n, instruct, eval_size, eval_size > MIN_MINIBATCH_SIZE)
    candidates = min(auto_n, max(3, math.ceil(settings.max_trials / 1.5)))
    minibatch = val_size > MIN_MINIBATCH_SIZE
    return MiproPlan(None, settings.max_trials, candidates, candidates, val_size, minibatch)


def trial_task_calls(plan: MiproPlan) -> int:
    """Task-model calls of MIPROv2's step 3: the default program, then every trial."""
    val = plan.eval_size
    if not plan.minibatch:
        return (plan.num_trials + 1) * val
    steps = MINIBATCH_FULL_EVAL_STEPS
    adjusted = plan.num_trials + plan.num_trials // steps + 1 + (1 if plan.num_trials % steps else 0)
    calls, next_number = val, 1  # optuna trial 0 is the default program's full evaluation
    for _ in range(plan.num_trials):
        trial_num, next_number = next_number + 1, next_number + 1
        calls += min(MINIBATCH_SIZE, val)
        if trial_num % (steps + 1) == 0 or trial_num == adjusted - 1:
            calls, next_number = calls + val, next_number + 1  # a full evaluation is a trial too
    return calls


def bootstrap_task_calls(plan: MiproPlan, train_size: int, settings: OptimizerSettings) -> int:
    """Expected teacher calls of MIPROv2's step 1 (demo sets are bootstrapped from train)."""
    max_boot, max_labeled = settings.max_bootstrapped_demos, settings.max_labeled_demos
    if max_boot == 0 and max_labeled == 0:
        max_boot = BOOTSTRAPPED_DEMOS_FOR_ZEROSHOT
    if max_boot == 0:
        return 0
    calls = 0
    for seed in range(-3, plan.num_fewshot_candidates - 3):
        if seed == -3 or (seed == -2 and max_labeled > 0):
            continue  # the zero-shot and the labels-only sets cost nothing
        wanted = max_boot if seed == -1 else (1 + max_boot) / 2  # shuffled sets draw 1..max
        calls += min(train_size, math.ceil(wanted / BOOTSTRAP_SUCCESS_RATE))
    return calls


def proposer_calls(plan: MiproPlan, train_size: int, n_predictors: int = 1) -> int:
    """Prompt-model calls of MIPROv2's step 2: a dataset summary, then 3 calls per instruction."""
    summary = 1 + min(max(0, math.ceil(train_size / 10) - 1), 9) + 1
    proposals = min(plan.num_instruct_candidates, plan.num_fewshot_candidates)
    return summary + n_predictors * proposals * 3


@dataclass(frozen=True)
class CostEstimate:
    """What a job will probably cost, before it runs."""

    estimated_cost_usd: float
    estimated_llm_calls: int
    train_size: int
    val_size: int
    max_trials: int
    teacher_model: str
    judge_model: str
    task_model: str
    unpriced_models: tuple[str, ...] = field(default_factory=tuple)
    assumptions: str = (
        f"tokens per call (in, out): task {TASK_CALL_TOKENS}, proposer {PROPOSER_CALL_TOKENS}, "
        f"judge {JUDGE_CALL_TOKENS}; {int(BOOTSTRAP_SUCCESS_RATE * 100)} % of bootstrap attempts pass"
    )


def estimate_job_cost(
    n_examples: int,
    teacher_model: str,
    judge_model: str,
    settings: OptimizerSettings,
    api_bases: Mapping[str, str | None] | None = None,
    prices: Mapping[str, Price] | None = None,
) -> CostEstimate:
    """Estimate calls and USD of a job over ``n_examples`` usable (gold) examples.

    ``prices``: the operator's prices (``KAIZEN_MODEL_PRICES``); like the job's meter,
    they override every other price of their model.
    """
    train, val, test = three_way_sizes(n_examples)
    plan = plan_mipro(val, settings)
    task_model = settings.task_model or teacher_model
    # Baseline, every export candidate and a no-prompt control on validation; two on test.
    scoring = (2 + EXPORT_CANDIDATES) * val + 2 * test
    task_calls = bootstrap_task_calls(plan, train, settings) + trial_task_calls(plan) + scoring
    prompt_calls = proposer_calls(plan, train)
    # "auto" picks the judge unless the outputs form a label set: estimate the dearer case.
    judge_calls = task_calls if settings.metric in ("llm_judge", "auto") else 0
    bases, operator = api_bases or {}, prices or {}
    total, unpriced = 0.0, []
    for model, calls, (tokens_in, tokens_out) in (
        (task_model, task_calls, TASK_CALL_TOKENS),
        (teacher_model, prompt_calls, PROPOSER_CALL_TOKENS),
        (judge_model, judge_calls, JUDGE_CALL_TOKENS),
    ):
        price = operator.get(model) or model_price(model, bases.get(model))
        if price is None:
            if calls and model not in unpriced:
                unpriced.append(model)
            continue
        total += price.cost(calls * tokens_in, calls * tokens_out)
    return CostEstimate(
        estimated_cost_usd=round(total, 4),
        estimated_llm_calls=task_calls + prompt_calls + judge_calls,
        train_size=train,
        val_size=val,
        max_trials=plan.num_trials,
        teacher_model=teacher_model,
        judge_model=judge_model,
        task_model=task_model,
        unpriced_models=tuple(unpriced),
    )
