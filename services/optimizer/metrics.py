"""How a candidate output is scored against a good reference output, in [0, 1].

A metric is a plain function ``(inputs, expected, predicted) -> float``, so the same
function scores DSPy's trials and the exported prompt's re-score. Built in:

- ``label_match``: the outputs form a small label set (``metric_options["labels"]``); the
  answer's first label, normalized and as a whole word, must equal the reference. The
  default (``auto``) when the gold outputs form a label set.
- ``llm_judge`` (the default otherwise): a judge LLM grades the candidate against the reference.
  Identical answers score 1 without a call; a reply without a usable score counts as a
  judge failure and scores 0 — the run never dies of it.
- ``exact_match``: equal after normalization (case, whitespace, surrounding quotes
  and punctuation).
- ``contains``: the normalized reference occurs in the normalized candidate.
- ``regex``: ``metric_options["pattern"]`` extracts the answer from the candidate (its
  first group, else the whole match), which must then equal the reference. The pattern
  runs under a timeout, so a pathological one cannot hang the worker.

Servers add metrics with :func:`register_metric` in their own configuration code. A
request only ever names a metric; it never supplies code or an import path.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

import regex

MetricFn = Callable[[Mapping[str, str], str, str], float]
MetricFactory = Callable[[Mapping[str, Any], Any], MetricFn]  # (options, judge LM or None)

MAX_PATTERN_LENGTH = 500
REGEX_TIMEOUT_SECONDS = 1.0
_STRIP = " \t\r\n\"'`.,;:!?()[]{}"


class MetricError(ValueError):
    """A metric name or its options are not usable."""


def normalize(text: str) -> str:
    """Casefold, collapse whitespace, drop surrounding quotes and punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text).strip(_STRIP)


def exact_match(inputs: Mapping[str, str], expected: str, predicted: str) -> float:
    return 1.0 if normalize(predicted) == normalize(expected) else 0.0


def contains(inputs: Mapping[str, str], expected: str, predicted: str) -> float:
    wanted = normalize(expected)
    return 1.0 if wanted and wanted in normalize(predicted) else 0.0


def _regex_metric(options: Mapping[str, Any], judge: Any) -> MetricFn:
    pattern = options.get("pattern")
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise MetricError(f"the regex metric needs metric_options.pattern (1–{MAX_PATTERN_LENGTH} chars)")
    flags = regex.IGNORECASE if options.get("ignore_case", True) else 0
    try:
        compiled = regex.compile(pattern, flags)
    except regex.error as exc:
        raise MetricError(f"invalid regex pattern: {exc}") from exc

    def score(inputs: Mapping[str, str], expected: str, predicted: str) -> float:
        try:
            match = compiled.search(predicted, timeout=REGEX_TIMEOUT_SECONDS)
        except TimeoutError:
            return 0.0
        if match is None:
            return 0.0
        found = match.group(1) if compiled.groups else match.group(0)
        return 1.0 if normalize(found or "") == normalize(expected) else 0.0

    return score


def first_label(predicted: str, labels: list[str]) -> str | None:
    """The label that occurs first in ``predicted`` as whole words (the longest on a tie)."""
    text = normalize(predicted)
    found: list[tuple[int, int, str]] = []
    for label in labels:
        match = re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text)
        if match:
            found.append((match.start(), -len(label), label))
    return min(found)[2] if found else None


def _label_match(options: Mapping[str, Any], judge: Any) -> MetricFn:
    raw = options.get("labels")
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and normalize(x) for x in raw):
        raise MetricError("the label_match metric needs metric_options.labels, a non-empty list of labels")
    labels = list(dict.fromkeys(normalize(x) for x in raw))

    def score(inputs: Mapping[str, str], expected: str, predicted: str) -> float:
        return 1.0 if first_label(predicted, labels) == normalize(expected) else 0.0

    return score


def _plain(fn: MetricFn) -> MetricFactory:
    return lambda options, judge: fn


def _as_score(value: Any) -> float | None:
    """A judge's score as a number in [0, 1]; accepts 0–1, 0–10 and 0–100 scales."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        found = re.search(r"-?\d+(?:\.\d+)?", str(value or ""))
        if found is None:
            return None
        value = float(found.group(0))
    for scale in (1.0, 10.0, 100.0):
        if 0.0 <= value <= scale:
            return float(value) / scale
    return None


def _llm_judge(options: Mapping[str, Any], judge: Any) -> MetricFn:
    if judge is None:
        raise MetricError("the llm_judge metric needs a judge model")
    import dspy  # here, so that importing the registry stays light

    from services.optimizer.metering import RunStopped

    class JudgeAnswer(dspy.Signature):  # type: ignore[misc]
        """Compare a candidate answer with a known-good reference answer to the same task input.
        Score 1.0 when the candidate gives the same answer or meaning as the reference, 0.0 when it
        is wrong, unrelated or empty, and a value in between when it is partly right."""

        task_input: str = dspy.InputField()
        reference_answer: str = dspy.InputField()
        candidate_answer: str = dspy.InputField()
        score: float = dspy.OutputField(desc="a number from 0.0 to 1.0")

    grade = dspy.Predict(JudgeAnswer)

    def score(inputs: Mapping[str, str], expected: str, predicted: str) -> float:
        if not normalize(predicted):
            return 0.0
        if normalize(predicted) == normalize(expected):
            return 1.0  # no judge needed, and no judge noise either
        task_input = "\n".join(f"{name}: {value}" for name, value in inputs.items())
        try:
            # trace=None: the judge's call must not join the trace MIPROv2 bootstraps demos from.
            with dspy.context(lm=judge, trace=None):
                verdict = grade(task_input=task_input, reference_answer=expected, candidate_answer=predicted)
            value = _as_score(getattr(verdict, "score", None))
        except RunStopped:
            raise
        except Exception:
            value = None
        if value is None:
            judge.meter.note("judge_failures")
            return 0.0
        return value

    return score


_REGISTRY: dict[str, MetricFactory] = {
    "exact_match": _plain(exact_match),
    "contains": _plain(contains),
    "regex": _regex_metric,
    "label_match": _label_match,
    "llm_judge": _llm_judge,
}
BUILTIN_METRICS = frozenset(_REGISTRY)


def register_metric(name: str, fn: MetricFn) -> None:
    """Make a server-configured metric selectable by ``name`` (built-ins cannot be replaced)."""
    if name in BUILTIN_METRICS:
        raise MetricError(f"{name!r} is a built-in metric")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
        raise MetricError(f"metric name {name!r} must be lowercase letters, digits and underscores")
    _REGISTRY[name] = _plain(fn)


def available_metrics() -> list[str]:
    return sorted(_REGISTRY)


def uses_judge(name: str) -> bool:
    return name == "llm_judge"


def build_metric(name: str, options: Mapping[str, Any] | None = None, judge: Any = None) -> MetricFn:
    """The scoring function for ``name``; every score it returns is clamped to [0, 1]."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise MetricError(f"unknown metric {name!r}; available: {', '.join(available_metrics())}")
    fn = factory(options or {}, judge)

    def clamped(inputs: Mapping[str, str], expected: str, predicted: str) -> float:
        return min(1.0, max(0.0, float(fn(inputs, expected, predicted or ""))))

    return clamped
