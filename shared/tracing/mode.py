"""The ``KAIZEN_TRACING`` values, and whether the ``tracing`` extra is installed.

Imports nothing from OpenTelemetry: settings validation asks :func:`tracing_missing`
without loading the SDK.
"""

from __future__ import annotations

import importlib.util
from typing import Literal, cast, get_args

TracingMode = Literal["off", "otlp", "console"]

#: The modules each mode needs, from the ``tracing`` extra.
_NEEDS: dict[str, tuple[str, ...]] = {
    "console": ("opentelemetry.sdk",),
    "otlp": ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"),
}


def tracing_missing(mode: str = "otlp") -> str | None:
    """Why ``mode`` cannot run here (a module of the extra is missing), or ``None``."""
    for module in _NEEDS.get(mode, ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            return (
                f"tracing is requested but {module} is not installed: install the `tracing` extra "
                "(pip install 'kaizen[tracing]') or set KAIZEN_TRACING=off"
            )
    return None


def parse_mode(value: str | None) -> TracingMode:
    """``value`` as a mode; anything unknown or empty is ``off`` (for processes without settings)."""
    text = (value or "off").strip().lower()
    return cast(TracingMode, text) if text in get_args(TracingMode) else "off"
