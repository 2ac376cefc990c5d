"""The active-prompt cache both clients keep, and how ``prompts.active`` reads its argument."""

from __future__ import annotations

import time
import uuid

from kaizen_client.errors import KaizenError


class PromptCache:
    """Active prompt texts by task, each kept ``ttl`` seconds (shared by both clients)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._texts: dict[str, tuple[float, str]] = {}
        self._task_ids: dict[str, str] = {}

    def get(self, task: str) -> str | None:
        hit = self._texts.get(task)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.ttl else None

    def put(self, task: str, text: str) -> str:
        self._texts[task] = (time.monotonic(), text)
        return text

    def clear(self) -> None:
        self._texts.clear()


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def named(task_name: str, name: str) -> bool:
    """Whether a task called ``task_name`` is the one ``name`` means (case and edges ignored)."""
    return task_name.casefold().strip() == name.casefold().strip()


def no_task_named(name: str) -> KaizenError:
    return KaizenError(f"no task is named {name!r}")
