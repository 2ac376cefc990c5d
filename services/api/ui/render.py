"""Rendering pages and fragments with Jinja2 (autoescaped), with the dashboard's headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.api.ui import present

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(percent=present.percent, seconds=present.seconds_text, when=present.when)

#: Everything the pages load comes from the API itself; nothing inline, nothing framed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(HEADERS)
    return response


def fragment(name: str, **context: Any) -> str:
    """A piece of a page, for a Server-Sent Event or an htmx swap."""
    return templates.get_template(name).render(**context)


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"
