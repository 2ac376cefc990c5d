"""Every LLM call of a job, counted in tokens and USD, and the job's budget enforced.

``dspy.track_usage()`` misses the calls made in Evaluate's worker threads and
``lm.history`` misses MIPROv2's proposer copies (``notes/stack-pitfalls.md``). What sees
every call is ``LM.update_history``: :class:`MeteredLM` overrides it and adds each
entry's usage to one shared :class:`Meter` (``LM.copy`` is shallow, so copies share it).
Entries with empty usage are cache hits and cost nothing.

The meter is also the job's brake. Once the budget is spent, a stop is requested or an
endpoint keeps failing, every *new* call is refused with a :class:`RunStopped` error and
the pipeline ends the run at its next safe point, keeping the best program so far.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before dspy loads litellm: no price fetch

import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dspy

from shared import tracing
from shared.llm.pricing import Price, is_local, model_price

# This many failed calls in a row (no success between) means the endpoint is down,
# not flaky: stop instead of scoring every remaining example 0.
MAX_CONSECUTIVE_ERRORS = 5


class RunStopped(Exception):
    """The run must stop at the next safe point (budget, cancellation, dead endpoint)."""


class BudgetExhausted(RunStopped):
    """The job spent its cost budget."""

    def __init__(self, spent: float, budget: float) -> None:
        super().__init__(f"cost budget exhausted: spent ${spent:.4f} of ${budget:.4f}")
        self.spent, self.budget = spent, budget


class StopRequested(RunStopped):
    """Someone asked the job to stop (SIGTERM to the worker)."""

    def __init__(self) -> None:
        super().__init__("cancelled by request")


class EndpointFailing(RunStopped):
    """An LLM endpoint failed several calls in a row (``unreachable``: it did not even connect)."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint, self.reason = endpoint, reason
        self.unreachable = bool(re.search(r"connect|refused|timed? ?out|unreachable|resolve", reason, re.I))
        what = "unreachable" if self.unreachable else f"failed {MAX_CONSECUTIVE_ERRORS} calls in a row"
        super().__init__(f"LLM endpoint {endpoint} {what}: {reason}")


@dataclass(frozen=True)
class UsageSnapshot:
    """Totals of a meter at one moment."""

    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    unpriced_calls: int
    failed_calls: int
    #: model → (calls, prompt tokens, completion tokens, USD)
    by_model: dict[str, tuple[int, int, int, float]]


def token_counts(usage: Mapping[str, Any]) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of an OpenAI-style usage record."""
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def call_cost(
    model: str, api_base: str | None, usage: Mapping[str, Any], reported: float | None, price: Price | None
) -> float | None:
    """USD of one call: operator's price, else free if local, else LiteLLM's figure, else our table."""
    prompt_tokens, completion_tokens = token_counts(usage)
    if price is not None:
        return price.cost(prompt_tokens, completion_tokens)
    if is_local(model, api_base):
        return 0.0
    if reported is not None:
        return float(reported)
    table = model_price(model, api_base)
    return table.cost(prompt_tokens, completion_tokens) if table is not None else None


class Meter:
    """Thread-safe totals of one job's LLM usage, its budget, and its stop conditions."""

    def __init__(self, budget: float | None = None, should_stop: Callable[[], bool] | None = None) -> None:
        self.budget = budget
        self._should_stop = should_stop or (lambda: False)
        self._lock = threading.Lock()
        self._calls = self._prompt = self._completion = self._unpriced = self._failed = 0
        self._cost = 0.0
        self._by_model: dict[str, tuple[int, int, int, float]] = {}
        self._consecutive_errors = 0
        self._failing: EndpointFailing | None = None
        self.incidents: Counter[str] = Counter()

    def __deepcopy__(self, memo: dict[int, Any]) -> Meter:
        return self  # DSPy deep-copies programs; a copy must still count into this meter

    def add(self, model: str, prompt_tokens: int, completion_tokens: int, cost: float | None) -> None:
        """Record one completed call to ``model``."""
        with self._lock:
            self._calls += 1
            self._prompt += prompt_tokens
            self._completion += completion_tokens
            self._consecutive_errors = 0
            if cost is None:
                self._unpriced += 1
            else:
                self._cost += cost
            calls, prompt, completion, spent = self._by_model.get(model, (0, 0, 0, 0.0))
            self._by_model[model] = (
                calls + 1,
                prompt + prompt_tokens,
                completion + completion_tokens,
                spent + (cost or 0.0),
            )

    def call_failed(self, endpoint: str, error: BaseException) -> None:
        """Record a failed call; several in a row mark the endpoint as failing."""
        with self._lock:
            self._consecutive_errors += 1
            self._failed += 1
            if self._consecutive_errors >= MAX_CONSECUTIVE_ERRORS and self._failing is None:
                self._failing = EndpointFailing(endpoint, _short_reason(error))

    def note(self, incident: str, count: int = 1) -> None:
        """Count a handled problem (parse failure, fallback) that did not stop the run."""
        with self._lock:
            self.incidents[incident] += count

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self.budget is not None and self._cost >= self.budget

    def snapshot(self) -> UsageSnapshot:
        with self._lock:
            return UsageSnapshot(
                self._calls,
                self._prompt,
                self._completion,
                self._cost,
                self._unpriced,
                self._failed,
                dict(self._by_model),
            )

    def stop_reason(self) -> RunStopped | None:
        """Why the run must stop now, or None. Budget first: it is the most actionable."""
        with self._lock:
            spent, failing = self._cost, self._failing
        if self.budget is not None and spent >= self.budget:
            return BudgetExhausted(spent, self.budget)
        if self._should_stop():
            return StopRequested()
        return failing

    def check(self) -> None:
        """Raise the reason to stop, if there is one (called before every call and at safe points)."""
        reason = self.stop_reason()
        if reason is not None:
            raise reason


def _short_reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]


class MeteredLM(dspy.LM):  # type: ignore[misc]  # dspy ships no type information
    """A ``dspy.LM`` that counts every call into a :class:`Meter` and refuses calls once stopped."""

    def __init__(self, model: str, *, meter: Meter, price: Price | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.meter = meter
        self.price_override = price

    @property
    def endpoint(self) -> str:
        return str(self.kwargs.get("api_base") or self.model)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.meter.check()
        try:
            # update_history (below) runs inside the call and adds its token counts to the span.
            with tracing.llm_call(self.model, self.kwargs.get("api_base")):
                return super().__call__(*args, **kwargs)
        except RunStopped:
            raise
        except Exception as exc:
            self.meter.call_failed(self.endpoint, exc)
            raise

    def update_history(self, entry: dict[str, Any]) -> None:
        usage = entry.get("usage") or {}
        if usage:  # empty usage: a cache hit, nothing was paid
            api_base = self.kwargs.get("api_base")
            cost = call_cost(self.model, api_base, usage, entry.get("cost"), self.price_override)
            self.meter.add(self.model, *token_counts(usage), cost)
            tracing.llm_usage(*token_counts(usage))
        super().update_history(entry)
