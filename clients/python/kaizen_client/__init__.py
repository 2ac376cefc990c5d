"""Kaizen's Python client: ``Kaizen`` (sync) and ``AsyncKaizen``, typed models and errors.

``client.feedback(...)`` never blocks, never raises and sends nothing on the caller's
thread; see ``kaizen_client.buffer`` for what happens to an item after that.
"""

from kaizen_client import models
from kaizen_client.aio import AsyncKaizen
from kaizen_client.buffer import Stats
from kaizen_client.client import Kaizen
from kaizen_client.errors import (
    ApiError,
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    KaizenError,
    NotFound,
    NotYetVisible,
    PayloadTooLarge,
    RateLimited,
    TransportError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

__version__ = "0.1.0"
__all__ = [
    "ApiError",
    "AsyncKaizen",
    "BadGateway",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Kaizen",
    "KaizenError",
    "NotFound",
    "NotYetVisible",
    "PayloadTooLarge",
    "RateLimited",
    "Stats",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "models",
]
