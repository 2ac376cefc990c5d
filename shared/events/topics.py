"""Topic names, their partitioning, and how each event is routed.

- ``<prefix>.tasks``: every task-scoped event (tasks, feedback, jobs, PRs, prompts),
  keyed by ``task_id`` so one partition orders everything that happens to a task.
- ``<prefix>.keys``: API key events, one partition, so "first key wins" is decided by
  log order, identically on every replay.
- ``<prefix>.heartbeats``: service heartbeats, short retention.
- ``<prefix>.deadletter``: records that failed to decode or process, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events.envelope import Envelope


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Topics:
    """The topic names for one prefix (tests use a fresh prefix each)."""

    prefix: str

    @property
    def tasks(self) -> str:
        return f"{self.prefix}.tasks"

    @property
    def keys(self) -> str:
        return f"{self.prefix}.keys"

    @property
    def heartbeats(self) -> str:
        return f"{self.prefix}.heartbeats"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    def group(self, service: str) -> str:
        """The consumer group of ``service`` in this deployment."""
        return f"{self.prefix}.{service}"

    @property
    def replayable(self) -> tuple[str, str]:
        """The topics the read model is a fold of."""
        return (self.keys, self.tasks)

    def for_envelope(self, envelope: Envelope) -> str:
        scope = envelope.data.SCOPE
        if scope == "key":
            return self.keys
        if scope == "service":
            return self.heartbeats
        return self.tasks

    def specs(self, task_partitions: int) -> list[TopicSpec]:
        forever = {"retention.ms": "-1"}
        return [
            TopicSpec(self.tasks, task_partitions, forever),
            TopicSpec(self.keys, 1, forever),
            TopicSpec(self.heartbeats, 1, {"retention.ms": str(24 * 3600 * 1000)}),
            TopicSpec(self.deadletter, 1, forever),
        ]
