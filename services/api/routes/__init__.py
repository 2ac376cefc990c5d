"""One router per resource; :func:`include` mounts them under ``/api/v1`` with key auth.

Each resource's router is included in the app itself, with the prefix and the
dependencies of its place, rather than in routers nested inside routers: FastAPI matches
a request again at every level of nesting, and three levels of it cost about 14 % of the
API's CPU on a job read (py-spy, bench/README.md). The paths, dependencies, answers and
OpenAPI document are the same.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from services.api import API_PREFIX
from services.api.deps import current_key
from services.api.routes import (
    feedback,
    feedback_batch,
    health,
    jobs,
    keys,
    optimize,
    prompts,
    tasks,
    webhooks,
)
from services.api.schemas.common import problem_responses
from services.api.storable import refuse_unstorable_text

# Everything under /api/v1 needs a key, except bootstrapping the first one; text that
# PostgreSQL cannot store is refused everywhere (after the key check: 401 comes first).
# Each route also takes its role (IngestKey, ReadKey or AdminKey from deps.py): 403 otherwise.
AUTHENTICATED = (keys, tasks, feedback, jobs, prompts, optimize, webhooks)


def include(app: FastAPI | APIRouter) -> None:
    """Every ``/api/v1`` route of Kaizen, in ``app``."""
    unstorable = Depends(refuse_unstorable_text)
    app.include_router(keys.bootstrap_router, prefix=API_PREFIX, dependencies=[unstorable])
    for module in AUTHENTICATED:
        app.include_router(
            module.router,
            prefix=API_PREFIX,
            dependencies=[Depends(current_key), unstorable],
            responses=problem_responses(403),
        )
    # The batch judges unstorable text item by item: one bad item must not sink the others.
    app.include_router(
        feedback_batch.batch_router,
        prefix=API_PREFIX,
        dependencies=[Depends(current_key)],
        responses=problem_responses(403),
    )


__all__ = ["health", "include"]
