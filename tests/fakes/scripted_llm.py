"""A scripted OpenAI-compatible LLM for tests: a better prompt really scores higher.

The task is routing support tickets to ``finance``, ``identity`` or ``engineering``
(:func:`true_label`). The scripted model *knows* the rule but only applies it when the
prompt teaches it: when the context (system text and earlier turns) contains the key
phrase ``route by keyword`` or at least two worked examples (two label words). An
untaught model answers a hash-chosen label, right about a third of the time. So demos
bootstrapped by MIPROv2, or an instruction carrying the key phrase, raise the score;
the bare current prompt does not.

It also answers DSPy's other requests sensibly: the instruction proposer (half of the
proposals carry the key phrase), program/data descriptions, and the LLM judge (1.0
when candidate and reference agree, else 0.0). JSON-schema and JSON-object
``response_format`` requests get JSON; other DSPy requests get the chat-adapter
format; plain requests (a prompt called under its contract) get the bare answer. Under
the ``template`` contract the ticket is the last ``Ticket:``/``Input:`` line of the user
message and everything before it is the context, as a model would read it.
Every reply carries usage (words as tokens); every call is counted by kind.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

LABELS = ("finance", "identity", "engineering")
KEY_PHRASE = "route by keyword"
KEYWORDS = {
    "finance": ("invoice", "refund", "charged", "payment", "receipt"),
    "identity": ("password", "sign in", "username", "two-factor", "locked out"),
}
TEACHING_INSTRUCTION = (
    "Route by keyword: invoices, refunds, charges, payments and receipts go to finance; passwords, "
    "signing in, usernames, two-factor codes and lock-outs go to identity; everything else to engineering."
)
PLAIN_INSTRUCTION = "Read each support ticket carefully and name the team that should handle it."
_TEMPLATES = {
    "finance": [
        "I was charged twice this month",
        "Where is the invoice for order {n}?",
        "Please refund my last payment",
        "The receipt for order {n} shows the wrong amount",
    ],
    "identity": [
        "I forgot my password again",
        "I cannot sign in since yesterday",
        "Please change my username to user{n}",
        "Two-factor code for device {n} never arrives",
        "I am locked out after the update",
    ],
    "engineering": [
        "The app crashes when I open report {n}",
        "Export to PDF is broken",
        "Page {n} loads very slowly",
        "I get error {n} when saving a draft",
    ],
}


def true_label(ticket: str) -> str:
    """The routing rule the scripted model knows."""
    text = ticket.lower()
    for label, words in KEYWORDS.items():
        if any(word in text for word in words):
            return label
    return "engineering"


def make_tickets(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (ticket, label) pairs, labels balanced."""
    rng = random.Random(seed)
    tickets: list[tuple[str, str]] = []
    while len(tickets) < n:
        label = LABELS[len(tickets) % len(LABELS)]
        text = rng.choice(_TEMPLATES[label]).format(n=rng.randint(100, 999))
        if all(text != t for t, _ in tickets):
            tickets.append((text, true_label(text)))
    return tickets


def _field(text: str, name: str) -> str:
    """The value of a DSPy ``[[ ## name ## ]]`` field in a message."""
    match = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?=\n\[\[ ## |\Z)", text, re.S)
    return match.group(1).strip() if match else ""


def _fields(section: str, system: str) -> list[str]:
    match = re.search(rf"Your {section} fields are:\n(.*?)(?:\nYour |\nAll interactions|\Z)", system, re.S)
    return re.findall(r"^\d+\. `(\w+)`", match.group(1), re.M) if match else []


def _taught(context: str) -> bool:
    lowered = context.lower()
    return KEY_PHRASE in lowered or sum(lowered.count(label) for label in LABELS) >= 2


def _route(ticket: str, context: str) -> str:
    if _taught(context):
        return true_label(ticket)
    digest = hashlib.sha256(ticket.encode()).digest()
    return LABELS[digest[0] % len(LABELS)]


class ScriptedLLM:
    """The server: ``with ScriptedLLM() as llm: ... llm.api_base ... llm.total_calls``."""

    model_name = "scripted"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # seconds per reply: lets tests catch a job mid-run
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"  # str: an AF_INET address; typeshed also allows bytes

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                payload = json.dumps(fake.complete(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedLLM:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- answering ---------------------------------------------------------------------------

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        if self.delay:
            time.sleep(self.delay)
        kind, content = self._answer(messages, body.get("response_format"))
        with self._lock:
            self.calls[kind] += 1
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return {
            "id": f"chatcmpl-{self.total_calls}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", self.model_name),
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(content.split()) + 1,
                "total_tokens": prompt_tokens + len(content.split()) + 1,
            },
        }

    def _answer(self, messages: list[dict[str, Any]], response_format: Any) -> tuple[str, str]:
        system = (
            str(messages[0].get("content", "")) if messages and messages[0].get("role") == "system" else ""
        )
        last = str(messages[-1].get("content", "")) if messages else ""
        context = "\n".join(str(m.get("content", "")) for m in messages[:-1])
        outputs = _schema_fields(response_format) or _fields("output", system)
        if not outputs:  # a plain call: a prompt called under its contract
            ticket, taught_by = _plain_ticket(last)
            return "plain", _route(ticket, context + taught_by)
        kind, values = self._dspy_values(outputs, last, context)
        if isinstance(response_format, dict) and response_format.get("type") in (
            "json_schema",
            "json_object",
        ):
            return kind, json.dumps(values)
        return kind, "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items()) + "[[ ## completed ## ]]"

    def _dspy_values(self, outputs: list[str], last: str, context: str) -> tuple[str, dict[str, Any]]:
        if "score" in outputs:
            reference = _field(last, "reference_answer").strip().lower()
            same = bool(reference) and reference in _field(last, "candidate_answer").strip().lower()
            return "judge", {"score": 1.0 if same else 0.0}
        proposing = [name for name in ("proposed_instruction", "new_instruction") if name in outputs]
        if proposing:  # MIPROv2's proposer, GEPA's reflection
            teach = hashlib.sha256(last.encode()).digest()[0] % 2 == 0
            return "proposer", {proposing[0]: TEACHING_INSTRUCTION if teach else PLAIN_INSTRUCTION}
        if "output" in outputs:
            ticket = next((_field(last, f) for f in ("ticket", "input") if _field(last, f)), last)
            answer = _route(ticket, context)
            return "task", {
                name: (answer if name == "output" else f"The ticket is about {answer}.") for name in outputs
            }
        filler = "Support tickets, each routed to one team: a short text in, a team name out."
        return "describe", dict.fromkeys(outputs, filler)


def _plain_ticket(message: str) -> tuple[str, str]:
    """(ticket, text before it): a template's last ``Ticket:`` line, else the bare message."""
    lines = list(re.finditer(r"^(?:Ticket|Input): (.*)$", message, re.M))
    if not lines:
        return message.strip(), ""
    return lines[-1].group(1).strip(), message[: lines[-1].start()]


def _schema_fields(response_format: Any) -> list[str]:
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return []
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    return list((schema.get("properties") or {}).keys())
