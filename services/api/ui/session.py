"""Dashboard sign-in: an API key is pasted once and exchanged for a session cookie.

``EventSource`` cannot send an ``X-API-Key`` header, so the browser holds a cookie
instead: the installation's Fernet encryption (AES-CBC + HMAC, with its own timestamp)
of the key's SHA-256 digest and a CSRF token, tagged with its purpose so no other Fernet
token of the installation (a Git token's ciphertext) is ever taken for a session. The key
itself is never stored. Every request re-checks the key exactly as the API does, so a
revoked key ends its sessions at the next request (open streams within seconds).

State-changing forms carry the session's CSRF token (synchronizer token); the sign-in
form, before any session exists, a random token also set as a cookie (double submit).
The cookies are HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Annotated

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Depends, Form, Request, Response

from services.api.deps import ROLE_CHECKS, ApiContext, ContextDep, active_key
from services.api.keyring import KeyRecord
from services.api.problems import ProblemError

COOKIE = "kaizen_ui_session"
LOGIN_COOKIE = "kaizen_ui_login"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 12 * 3600
_PURPOSE = "kaizen-ui-session/1"


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page (``reason`` is shown there)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Refused(Exception):
    """The session may not do this (role, CSRF): a page that says so in plain words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class UiSession:
    """A signed-in browser: its (still active) key and the token its forms must carry."""

    key: KeyRecord
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.key.role == "admin"


def seal(fernet: Fernet, key_hash: str) -> tuple[str, str]:
    """A new session for the key of ``key_hash``: (cookie value, CSRF token)."""
    csrf = secrets.token_urlsafe(32)
    payload = json.dumps({"p": _PURPOSE, "h": key_hash, "c": csrf}).encode()
    return fernet.encrypt(payload).decode(), csrf


def unseal(fernet: Fernet, value: str) -> tuple[str, str] | None:
    """(key hash, CSRF token) of a cookie this installation sealed and that has not expired."""
    try:
        payload = json.loads(fernet.decrypt(value.encode(), ttl=SESSION_SECONDS))
    except (InvalidToken, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("p") != _PURPOSE:
        return None
    key_hash, csrf = payload.get("h"), payload.get("c")
    return (key_hash, csrf) if isinstance(key_hash, str) and isinstance(csrf, str) else None


def same_token(expected: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())


def set_cookie(response: Response, name: str, value: str, secure: bool, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


async def active_reader(context: ApiContext, key_hash: str) -> KeyRecord:
    """The key of ``key_hash`` if it is active and may read (the API's own checks)."""
    # The API's lookup itself (key ring, else read model): a revoked key is refused the same way.
    record = await active_key(context, key_hash)
    if record is None:
        raise SignInRequired("Your API key was revoked or is unknown. Sign in with an active key.")
    try:
        return await ROLE_CHECKS["read"](record)
    except ProblemError as exc:
        raise SignInRequired(
            "This is an ingest key: it can send feedback but not read the dashboard. "
            "Sign in with a read or admin key."
        ) from exc


async def current_session(request: Request, context: ContextDep) -> UiSession:
    value = request.cookies.get(COOKIE)
    if not value:
        raise SignInRequired()
    opened = unseal(context.fernet, value)
    if opened is None:
        raise SignInRequired("Your session has expired. Sign in again.")
    key_hash, csrf = opened
    return UiSession(await active_reader(context, key_hash), csrf)


Session = Annotated[UiSession, Depends(current_session)]


async def posted_form(session: Session, csrf: Annotated[str | None, Form()] = None) -> UiSession:
    """A state-changing form of this session: its CSRF token must match."""
    if not same_token(session.csrf, csrf):
        raise Refused(403, "The form was stale or not sent from this dashboard. Reload the page and retry.")
    return session


PostedForm = Annotated[UiSession, Depends(posted_form)]


async def admin_action(session: PostedForm) -> UiSession:
    """A form that changes configuration or starts work: as in the API, it needs an admin key."""
    try:
        await ROLE_CHECKS["admin"](session.key)
    except ProblemError as exc:
        raise Refused(403, f"This needs an admin key; you signed in with a {session.key.role} key.") from exc
    return session


AdminAction = Annotated[UiSession, Depends(admin_action)]
