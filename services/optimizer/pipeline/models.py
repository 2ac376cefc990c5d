"""The job's LLMs: metered ``dspy.LM`` objects for the task, teacher and judge, and a reachability check."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from urllib.parse import urlparse

import litellm

from services.optimizer.metering import Meter, MeteredLM
from services.optimizer.spec import JobFailed, JobFailure, JobSpec
from shared.llm.pricing import Price, is_local


def declare_local_model(model: str) -> None:
    """Tell LiteLLM a loopback-served model honours JSON-schema ``response_format``.

    llama.cpp (and vLLM, Ollama) constrain decoding to the schema, so DSPy's JSONAdapter
    gets parseable replies even from a 135M model; unknown to LiteLLM, DSPy would fall
    back to plain JSON mode, where SmolLM2 often answers ``{}``.
    """
    if litellm.supports_response_schema(model=model):
        return
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    # No prices here: local calls are priced by shared.llm.pricing (free unless the operator says).
    entry = {"supports_response_schema": True, "litellm_provider": provider, "mode": "chat"}
    litellm.register_model({model: entry})


def make_lm(spec: JobSpec, model: str, meter: Meter) -> MeteredLM:
    endpoint = spec.endpoint(model)
    local = is_local(model, endpoint.api_base)
    if local and not endpoint.api_base:
        message = f"no api_base configured for the local model {model}"
        raise JobFailed(JobFailure(kind="invalid_spec", error_message=message))
    if local:
        declare_local_model(model)
    price = None
    if endpoint.input_usd_per_million is not None or endpoint.output_usd_per_million is not None:
        price = Price(endpoint.input_usd_per_million or 0.0, endpoint.output_usd_per_million or 0.0)
    api_key = endpoint.api_key.get_secret_value() if endpoint.api_key else ("local" if local else None)
    client = {k: v for k, v in {"api_base": endpoint.api_base, "api_key": api_key}.items() if v is not None}
    return MeteredLM(
        model,
        meter=meter,
        price=price,
        temperature=0.0,
        max_tokens=spec.max_tokens,
        cache=False,  # every figure is measured: no answer may come from a cache
        engine="litellm",  # the contract is LiteLLM over HTTP, not DSPy's native engine
        num_retries=1 if local else 3,
        **client,
    )


def check_endpoints(lms: Sequence[MeteredLM], timeout: float = 5.0) -> None:
    """Fail fast, naming the URL, when a configured endpoint does not accept connections."""
    for base in sorted({str(lm.kwargs["api_base"]) for lm in lms if lm.kwargs.get("api_base")}):
        url = urlparse(base)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname or "", port), timeout=timeout).close()
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc) or type(exc).__name__
            raise JobFailed(
                JobFailure(kind="llm_unreachable", error_message=f"LLM endpoint {base} unreachable: {reason}")
            ) from exc
