"""Scoring a prompt file the way the application uses it: LiteLLM directly, not DSPy.

Each answer comes from the messages :func:`shared.prompt_contract.render_messages`
builds for the task's contract, so a score here is the score the application would see.
A :class:`Scorer` remembers the answers of one run (same text, same example → same
temperature-0 call), so the candidates of one export never pay twice for one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dspy
import litellm

from services.optimizer.metering import MeteredLM, call_cost, token_counts
from services.optimizer.metrics import MetricFn
from services.optimizer.spec import Example, JobSpec
from shared import tracing
from shared.prompt_contract import render_messages, user_message

Messages = list[dict[str, str]]


@dataclass
class Scorer:
    """Scores prompt texts on examples under the spec's contract, with the task model."""

    spec: JobSpec
    lm: MeteredLM
    metric: MetricFn
    adapter: object  # for the judge's DSPy calls: worker threads don't inherit dspy.context
    _answers: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)

    def score(self, text: str, examples: Sequence[Example]) -> tuple[float, list[str]]:
        """Mean score of ``text`` on ``examples`` and the answers, in order."""
        fields = self.spec.input_fields
        contract = self.spec.prompt_contract
        return self._score(text, examples, lambda e: render_messages(contract, text, e.inputs, fields))

    def score_without_prompt(self, examples: Sequence[Example]) -> float:
        """A control: the inputs alone, as the user message, with no prompt at all."""
        fields = self.spec.input_fields
        mean, _ = self._score(
            "\0control", examples, lambda e: [{"role": "user", "content": user_message(e.inputs, fields)}]
        )
        return mean

    def score_in_user_message(self, instruction: str, examples: Sequence[Example]) -> float:
        """A diagnostic for ``system``: the same instruction placed before the inputs in the user message."""
        fields = self.spec.input_fields

        def messages(example: Example) -> Messages:
            return [
                {
                    "role": "user",
                    "content": f"{instruction.strip()}\n\n{user_message(example.inputs, fields)}",
                }
            ]

        mean, _ = self._score("\0user:" + instruction, examples, messages)
        return mean

    def _score(
        self, key: str, examples: Sequence[Example], messages: Callable[[Example], Messages]
    ) -> tuple[float, list[str]]:
        if not examples:
            return 0.0, []

        def answer(example: Example) -> tuple[float, str]:
            cache_key = (key, example.canonical_json())
            if cache_key not in self._answers:
                self._answers[cache_key] = self._answer(example, messages(example))
            return self._answers[cache_key]

        with ThreadPoolExecutor(max_workers=self.spec.num_threads) as pool:
            scored = list(pool.map(answer, examples))
        return sum(s for s, _ in scored) / len(scored), [a for _, a in scored]

    def _answer(self, example: Example, messages: Messages) -> tuple[float, str]:
        lm = self.lm
        lm.meter.check()
        client = {
            k: lm.kwargs[k] for k in ("api_base", "api_key", "temperature", "max_tokens") if k in lm.kwargs
        }
        try:
            with tracing.llm_call(lm.model, lm.kwargs.get("api_base")) as call:
                response = litellm.completion(
                    model=lm.model, messages=messages, num_retries=lm.num_retries, **client
                )
                usage = dict(getattr(response, "usage", None) or {})
                call.usage(*token_counts(usage))
        except Exception as exc:
            lm.meter.call_failed(lm.endpoint, exc)
            lm.meter.check()
            lm.meter.note("rescore_errors")
            return 0.0, ""
        reported = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        cost = call_cost(lm.model, lm.kwargs.get("api_base"), usage, reported, lm.price_override)
        lm.meter.add(lm.model, *token_counts(usage), cost)
        content = str(response.choices[0].message.content or "").strip()
        with dspy.context(adapter=self.adapter):
            return self.metric(example.inputs, example.output, content), content
