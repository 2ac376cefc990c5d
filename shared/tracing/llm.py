"""LLM call spans (OpenTelemetry GenAI semantic conventions): model, endpoint, token counts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlparse

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.tracing import LlmCall, context


class _Recorded(LlmCall):
    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def usage(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        if prompt_tokens is not None:
            self.span.set_attribute("gen_ai.usage.input_tokens", int(prompt_tokens))
        if completion_tokens is not None:
            self.span.set_attribute("gen_ai.usage.output_tokens", int(completion_tokens))


def current() -> LlmCall:
    """The LLM call whose span is current (its usage lands on it), else a no-op."""
    span = trace.get_current_span()
    recording = span.is_recording() and getattr(span, "attributes", {}).get("gen_ai.operation.name")
    return _Recorded(span) if recording else LlmCall()


@contextlib.contextmanager
def call(model: str, api_base: str | None) -> Iterator[LlmCall]:
    provider, _, _name = model.partition("/")
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.provider.name": provider if _name else "unknown",
    }
    if api_base:
        url = urlparse(api_base)
        if url.hostname:
            attributes["server.address"] = url.hostname
        if url.port:
            attributes["server.port"] = url.port
    span = context.tracer().start_span(
        f"chat {model}", context=context.parent_here(), kind=SpanKind.CLIENT, attributes=attributes
    )
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        try:
            yield _Recorded(span)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
            raise
