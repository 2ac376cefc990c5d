"""The dashboard's routers, one per page, mounted under ``/ui`` (outside the JSON API)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.ui.routes import auth, events, job, jobs, prompts, tasks

ui_router = APIRouter(include_in_schema=False)
for module in (auth, tasks, jobs, job, prompts, events):
    # The prefix is given here, not to ui_router: the Tasks page is ``/ui`` itself.
    ui_router.include_router(module.router, prefix="/ui")

__all__ = ["ui_router"]
