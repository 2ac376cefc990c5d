"""A job's data: gold examples only, a seeded shuffle, then train / validation / test (pure).

Below ``TEST_SPLIT_MIN`` (60) usable examples the split is the seed page's 80 / 20
train / validation (52 → 41 / 11). From there on, 20 % is first held out as a *test*
split that nothing in the run sees until the very end (candidates are chosen on
validation only), and the rest is split 80 / 20 as before.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from services.optimizer.metrics import normalize
from services.optimizer.spec import Example, JobFailed, JobFailure, JobSpec
from shared.llm.pricing import MIN_USABLE_EXAMPLES, three_way_sizes

# A "label set": few distinct short outputs, each seen more than once.
MAX_LABELS = 12
MAX_LABEL_CHARS = 40


@dataclass(frozen=True)
class Dataset:
    """The examples a job learns from (train), chooses on (val) and reports on (test)."""

    train: list[Example]
    val: list[Example]
    test: list[Example]
    excluded: int
    dataset_hash: str

    @property
    def outputs(self) -> list[str]:
        """Gold outputs the run may look at: train and validation, never test."""
        return [e.output for e in (*self.train, *self.val)]


def prepare_dataset(spec: JobSpec) -> Dataset:
    """Gold examples only, shuffled by the seed, split train / val (/ test).

    Outputs scored below ``min_score_for_gold`` are excluded from every split: a bad
    answer must never be taught as a demo nor used as the reference a candidate is
    compared with. Examples missing an input or with an empty output are excluded too.
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
    train, val, _test = three_way_sizes(len(ordered))
    return Dataset(
        train=ordered[:train],
        val=ordered[train : train + val],
        test=ordered[train + val :],
        excluded=len(spec.examples) - len(usable),
        dataset_hash=spec.dataset_hash(),
    )


def label_space(outputs: Sequence[str]) -> list[str]:
    """The labels the gold outputs are drawn from, most frequent first; [] when they are free text.

    A label set is at most :data:`MAX_LABELS` distinct short outputs (normalized), each
    seen at least twice, covering every output.
    """
    counts = Counter(normalize(o) for o in outputs if normalize(o))
    if not counts or len(counts) > MAX_LABELS or len(counts) == len(outputs):
        return []
    if any(len(label) > MAX_LABEL_CHARS or n < 2 for label, n in counts.items()):
        return []
    return [label for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def majority_rate(examples: Sequence[Example], labels: Sequence[str]) -> float | None:
    """How often always answering the most frequent label would be right (a floor worth beating)."""
    if not labels or not examples:
        return None
    return sum(1 for e in examples if normalize(e.output) == labels[0]) / len(examples)


def words(text: str) -> set[str]:
    """Lower-case word tokens of at least three letters (for on-task checks)."""
    return {w for w in re.findall(r"[a-z][a-z0-9_]{2,}", text.lower())}
