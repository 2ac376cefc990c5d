"""One router per resource; ``api_router`` mounts them under ``/api/v1`` with key auth."""

from __future__ import annotations

from fastapi import APIRouter, Depends

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
api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(keys.bootstrap_router, dependencies=[Depends(refuse_unstorable_text)])
# Each route also takes its role (IngestKey, ReadKey or AdminKey from deps.py): 403 otherwise.
authenticated = APIRouter(
    dependencies=[Depends(current_key), Depends(refuse_unstorable_text)], responses=problem_responses(403)
)
for module in (keys, tasks, feedback, jobs, prompts, optimize, webhooks):
    authenticated.include_router(module.router)
api_router.include_router(authenticated)
# The batch judges unstorable text item by item: one bad item must not sink the others.
api_router.include_router(
    feedback_batch.batch_router, dependencies=[Depends(current_key)], responses=problem_responses(403)
)

__all__ = ["api_router", "health"]
