"""The dashboard at ``/ui``: server-rendered pages (Jinja2), htmx and Server-Sent Events.

Served by the API process itself; the browser loads nothing from anywhere else. The pages
read through the API's own queries and views, and act through its route functions with
the signed-in key, so the dashboard shows and decides what the API does.

Layout: ``session.py`` (sign-in cookie, CSRF, roles), ``routes/`` (one router per page),
``present.py`` and ``chart.py`` (what a page shows, pure), ``problems.py`` (an API error
in plain words), ``logtail.py`` (the Events page reads Kafka), ``docs.py`` (``/docs``
and ``/redoc`` with local assets), ``templates/`` and ``static/`` (htmx and its SSE
extension, vendored).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.api.ui import render, session
from services.api.ui.routes import ui_router
from services.api.ui.routes.auth import login_page
from services.api.ui.session import Refused, SignInRequired

STATIC_URL = "/ui/static"


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    if "text/event-stream" in request.headers.get("accept", ""):
        response: Response = Response(status_code=204)  # an EventSource stops reconnecting on 204
    elif request.method == "GET" and not render.is_htmx(request) and not exc.reason:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)
    elif request.method == "GET" and not render.is_htmx(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = login_page(request, exc.reason, target, 401)
    else:
        response = login_page(request, exc.reason or "Sign in to continue.", "/ui", 401)
        response.headers["HX-Redirect"] = "/ui/login"
    if exc.reason:  # the cookie names a revoked key or has expired: forget it
        response.delete_cookie(session.COOKIE, path=session.COOKIE_PATH)
    return response


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return render.page(request, "error.html", exc.status, message=exc.message)


def install(app: FastAPI) -> None:
    """Mount the dashboard and its static files on ``app``."""
    app.include_router(ui_router)
    app.mount(STATIC_URL, StaticFiles(directory=Path(__file__).parent / "static"), name="ui-static")
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(Refused, _refused)
