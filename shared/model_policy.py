"""Which LiteLLM model strings a task may name, and whether its cost budget can be enforced.

A model string picks the provider *and* can pick the host: LiteLLM reads
``huggingface/https://host/x`` as "send the examples to that URL". So a task's
``teacher_model``, ``judge_model`` and ``evaluator_config.task_model`` must match one of
the operator's patterns (``KAIZEN_ALLOWED_MODELS``, :mod:`fnmatch` syntax), and anything
URL-like is refused whatever the patterns say. The server's own default models are
always allowed: the operator chose them.

A ``cost_budget`` is only a promise when every model the job calls has a price: the
operator's (``KAIZEN_MODEL_PRICES``), LiteLLM's price map, our fallback table, or free
because it is served from a loopback address.

Pure: the API checks a task with it, and the optimizer checks again before a job starts
(the allowlist or the prices may have changed since the task was saved).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.llm.pricing import model_price

#: The embedded model and the common hosted families (OpenAI and Anthropic, with or
#: without LiteLLM's provider prefix). Providers that route by URL are not in it.
DEFAULT_ALLOWED_MODELS = "openai/smollm2,openai/*,anthropic/*,gpt-*,claude-*"
MAX_MODEL_CHARS = 256
#: The task settings that name a model, as a 422 names them.
MODEL_FIELDS = ("teacher_model", "judge_model", "evaluator_config.task_model")

# Letters, digits and the punctuation real model strings use: provider/name, a version
# after ':' or '@' (ollama tags, Vertex dates, Bedrock ARNs), '.', '-', '_', '+'.
_MODEL_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")
# A scheme anywhere in the string ("huggingface/https:", "x/file:") is a URL in disguise.
_SCHEME = re.compile(r"(^|[/@])[A-Za-z][A-Za-z0-9+.-]*:(//|/|$)|(^|/)(https?|wss?|ftp|file|unix):", re.I)


class ModelPrice(BaseModel):
    """What the operator pays for a model, USD per million tokens (``KAIZEN_MODEL_PRICES``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_usd_per_million: float = Field(ge=0)
    output_usd_per_million: float = Field(ge=0)


def url_problem(model: str) -> str | None:
    """Why ``model`` is not a plain model string (a URL, a path, odd characters), or None."""
    if not model:
        return "must not be empty"
    if len(model) > MAX_MODEL_CHARS:
        return f"must be at most {MAX_MODEL_CHARS} characters long"
    if "://" in model or "//" in model or _SCHEME.search(model):
        return "must be a model name, not a URL: endpoints are configured by the operator"
    if not _MODEL_CHARS.fullmatch(model) or ".." in model.split("/"):
        return "may contain only letters, digits and . _ : / @ + - (no spaces, no '..')"
    return None


def parse_patterns(text: str) -> tuple[str, ...]:
    """``KAIZEN_ALLOWED_MODELS`` as a tuple of patterns; ValueError names a bad one."""
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    for pattern in patterns:
        if "://" in pattern or any(c.isspace() for c in pattern):
            raise ValueError(f"{pattern!r} is not a model pattern (no URLs, no spaces)")
    return patterns


@dataclass(frozen=True)
class ModelRules:
    """The operator's model settings, as the API and the optimizer apply them."""

    patterns: tuple[str, ...]
    default_teacher: str
    default_judge: str
    #: Where the default models are served (the embedded server unless configured).
    default_api_base: str
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)

    def refusal(self, model: str) -> str | None:
        """Why a task may not name ``model``, or None when it may."""
        if problem := url_problem(model):
            return problem
        if model in (self.default_teacher, self.default_judge):
            return None
        if any(fnmatch.fnmatchcase(model, p) for p in self.patterns):
            return None
        allowed = ", ".join(self.patterns) or "none"
        return f"model {model!r} is not allowed on this server (KAIZEN_ALLOWED_MODELS: {allowed})"

    def api_base(self, model: str) -> str | None:
        if model in (self.default_teacher, self.default_judge):
            return self.default_api_base
        return None

    def priced(self, model: str) -> bool:
        return model in self.prices or model_price(model, self.api_base(model)) is not None


def named_models(settings: Mapping[str, Any]) -> dict[str, str]:
    """The models a task names itself, by field (empty and non-string values left out)."""
    config = settings.get("evaluator_config")
    values = {
        "teacher_model": settings.get("teacher_model"),
        "judge_model": settings.get("judge_model"),
        "evaluator_config.task_model": config.get("task_model") if isinstance(config, Mapping) else None,
    }
    return {name: value for name, value in values.items() if isinstance(value, str) and value}


def model_problems(settings: Mapping[str, Any], rules: ModelRules) -> dict[str, str]:
    """Field → why the task's models cannot be used (allowlist, URLs, an unenforceable budget)."""
    named = named_models(settings)
    problems = {name: reason for name, model in named.items() if (reason := rules.refusal(model))}
    config = settings.get("evaluator_config")
    if isinstance(config, Mapping) and "task_model" in config and not isinstance(config["task_model"], str):
        problems["evaluator_config.task_model"] = "must be a string"
    if settings.get("cost_budget") is not None and not problems:
        used = {
            "teacher_model": named.get("teacher_model", rules.default_teacher),
            "judge_model": named.get("judge_model", rules.default_judge),
            "evaluator_config.task_model": named.get("evaluator_config.task_model"),
        }
        unpriced = sorted({m for m in used.values() if m and not rules.priced(m)})
        if unpriced:
            problems["cost_budget"] = (
                f"cannot be enforced: no price is known for {', '.join(unpriced)}; "
                "use priced models or have the operator set KAIZEN_MODEL_PRICES"
            )
    return problems
