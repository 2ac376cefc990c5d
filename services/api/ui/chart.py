"""The trial-score chart's geometry, for an inline SVG drawn on the server (no JavaScript).

Scores are in [0, 1]; trials run 1..n left to right. Each trial is a dot; the best score
so far is a step line; the baseline, when known, a dashed line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.api.ui.present import Trial

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    dots: list[Dot]
    best_path: str  # an SVG path ``d``: the best score so far, as steps
    baseline_y: float | None
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    plot: tuple[float, float, float, float]  # left, top, right, bottom


def _x(trial: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span / 2 if count <= 1 else (trial - 1) * span / (count - 1))


def _y(score: float) -> float:
    clamped = min(max(score, 0.0), 1.0)
    return TOP + (1 - clamped) * (HEIGHT - TOP - BOTTOM)


def chart(trials: Sequence[Trial], baseline: float | None) -> Chart | None:
    """The chart of ``trials``; ``None`` when there is nothing to plot yet."""
    if not trials:
        return None
    count = max(t.number for t in trials)
    dots = [
        Dot(round(_x(t.number, count), 1), round(_y(t.score), 1), f"trial {t.number}: {t.score:.3f}")
        for t in trials
    ]
    steps: list[str] = []
    for t in trials:
        x, y = round(_x(t.number, count), 1), round(_y(t.best), 1)
        steps.append(f"M {x} {y}" if not steps else f"H {x} V {y}")
    if len(trials) == 1:  # one trial: a short flat segment, so the line is visible
        x, y = round(_x(trials[0].number, count), 1), round(_y(trials[0].best), 1)
        steps = [f"M {x - 12} {y}", f"H {x + 12}"]
    every = max(1, count // 10)
    x_ticks = [Tick(round(_x(n, count), 1), str(n)) for n in range(1, count + 1) if (n - 1) % every == 0]
    y_ticks = [Tick(round(_y(v), 1), f"{v:.2f}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return Chart(
        WIDTH,
        HEIGHT,
        dots,
        " ".join(steps),
        round(_y(baseline), 1) if baseline is not None else None,
        x_ticks,
        y_ticks,
        (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM),
    )
