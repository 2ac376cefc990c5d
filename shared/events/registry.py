"""Every event type Kaizen knows, by its CloudEvents ``type``."""

from __future__ import annotations

from shared.events import feedback, jobs, keys, ops, prompts, prs, tasks, webhooks
from shared.events.base import Event

_MODULES = (tasks, feedback, jobs, prs, prompts, keys, ops, webhooks)


def _collect() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    for module in _MODULES:
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Event) and "TYPE" in value.__dict__:
                if value.TYPE in found and found[value.TYPE] is not value:
                    raise RuntimeError(f"event type {value.TYPE} is declared twice")
                found[value.TYPE] = value
    return found


EVENT_TYPES: dict[str, type[Event]] = _collect()


def event_class(type_: str) -> type[Event]:
    """The model of a (current) event type; raises ``KeyError`` for unknown types."""
    return EVENT_TYPES[type_]
