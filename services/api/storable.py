"""Text the read model cannot store is refused at the door: a 422 naming the field.

PostgreSQL's ``text`` holds neither NUL nor an unpaired surrogate. Accepted, such a string
would reach the log, and the projector would then refuse to apply it. One check covers
every route: it walks a request's path and query parameters and its decoded JSON body.
Seed files are JSONL, so ``seeds.py`` runs the same walk on each line.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

#: NUL, and UTF-16 surrogates (a JSON ``\\ud800`` escape decodes to an unpaired one).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: Validation error types, worded in ``validation.py``.
UNSTORABLE_TEXT = "unstorable_text"
UNSTORABLE_KEY = "unstorable_key"
MAX_REPORTED = 20

Loc = tuple[str | int, ...]


def unstorable(document: Any, loc: Loc = ()) -> list[dict[str, Any]]:
    """A validation error (pydantic's shape) for each string or object key PostgreSQL cannot store.

    Iterative, not recursive: a deeply nested body must not exhaust the stack.
    """
    errors: list[dict[str, Any]] = []
    pending: list[tuple[Loc, Any]] = [(loc, document)]
    while pending and len(errors) < MAX_REPORTED:
        where, value = pending.pop()
        if isinstance(value, str):
            if UNSTORABLE.search(value):
                errors.append(_error(UNSTORABLE_TEXT, where))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and UNSTORABLE.search(key):
                    errors.append(_error(UNSTORABLE_KEY, where))
                else:
                    pending.append(((*where, key), item))
        elif isinstance(value, list):
            pending.extend(((*where, i), item) for i, item in enumerate(value))
    return sorted(errors, key=lambda e: [str(part) for part in e["loc"]])


def may_hold_unstorable(body: bytes) -> bool:
    """Whether a JSON body may hold unstorable text; when not, it needs no walk.

    Strict JSON carries NUL only as the escape \\u0000, and a surrogate only as an escape
    or as raw bytes led by 0xED.
    """
    return b"\\u" in body or b"\xed" in body


def _error(kind: str, loc: Loc) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": kind, "input": None}


async def refuse_unstorable_text(request: Request) -> None:
    """Dependency: a 422 when any parameter or JSON body string is unstorable."""
    errors = unstorable(dict(request.path_params), ("path",))
    for name, value in request.query_params.multi_items():
        errors += unstorable({name: value}, ("query",))
    errors += unstorable(await _json_body(request), ("body",))
    if errors:
        raise RequestValidationError(errors[:MAX_REPORTED])


async def _json_body(request: Request) -> Any:
    """The decoded JSON body (FastAPI decoded it already: ``request.json()`` is cached), or None."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return None
    if not may_hold_unstorable(await request.body()):
        return None
    try:
        return await request.json()
    except ValueError:
        return None  # malformed JSON: FastAPI answers that itself, naming the position
