"""``/ui/login`` and ``/ui/logout``: an API key in, a session cookie out (and back)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.api.deps import ContextDep
from services.api.security import hash_key, is_well_formed
from services.api.ui import render, session
from services.api.ui.session import PostedForm, SignInRequired

router = APIRouter()
LOGIN_SECONDS = 3600


def safe_next(target: str | None) -> str:
    """Only a dashboard path: a sign-in link must not send the browser elsewhere."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


def login_page(request: Request, reason: str = "", next_url: str = "/ui", status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render.page(
        request, "login.html", status_code, reason=reason, next_url=safe_next(next_url), login_token=token
    )
    session.set_cookie(response, session.LOGIN_COOKIE, token, request.url.scheme == "https", LOGIN_SECONDS)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/ui") -> Response:
    return login_page(request, next_url=next)


@router.post("/login")
async def login(
    request: Request,
    context: ContextDep,
    api_key: Annotated[str, Form()] = "",
    login_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui",
) -> Response:
    """Check the key as the API would; on success set the session cookie and go on."""
    expected = request.cookies.get(session.LOGIN_COOKIE)
    if expected is None or not session.same_token(expected, login_token):
        return login_page(request, "The sign-in form expired. Paste your key again.", next, 403)
    presented = api_key.strip()
    if not is_well_formed(presented):
        reason = "That is not an API key: a key is kaizen_ followed by 32 hexadecimal digits."
        return login_page(request, reason, next, 401)
    try:
        record = await session.active_reader(context, hash_key(presented))
    except SignInRequired as refused:
        return login_page(request, refused.reason, next, 401)
    value, _ = session.seal(context.fernet, record.key_hash)
    response = RedirectResponse(safe_next(next), status_code=303)
    secure = request.url.scheme == "https"
    session.set_cookie(response, session.COOKIE, value, secure, session.SESSION_SECONDS)
    response.delete_cookie(session.LOGIN_COOKIE, path=session.COOKIE_PATH)
    return response


@router.post("/logout")
async def logout(_: PostedForm) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(session.COOKIE, path=session.COOKIE_PATH)
    return response
