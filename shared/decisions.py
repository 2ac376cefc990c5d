"""How each request about a task, a prompt version or a webhook subscription is decided, once.

The projector, the optimizer and the PR publisher each fold the task topic into a state of
their own, and each must know whether a ``TaskCreated``, ``TaskUpdated``, ``TaskDeleted``,
``PromptVersionCreated`` or ``PromptActivated`` took effect. They used to judge that with a
rule of their own each, and the rules disagreed (docs/adr/0006-decide-once.md lists how).
Now each consumer reduces its state to the few facts below and asks the same function, so
the same history gives the same verdicts everywhere and on every replay. Webhook
subscriptions are folded by the projector and the webhooks service, API keys by the
projector and every API process's key ring, under rules of the same kind.

The rules are part of the log's meaning: old logs are replayed through them. Changing one
changes what an existing history means, so it needs an ADR and a way to keep old logs'
verdicts (docs/adr/0006-decide-once.md, "Consequences").

No I/O: standard library only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class TaskLife(enum.Enum):
    """What a consumer knows about a task id: never created, created and live, or deleted."""

    ABSENT = "absent"
    LIVE = "live"
    DELETED = "deleted"


#: The status of a prompt version *of the task the request names*; ``None`` when the
#: consumer knows no such version of that task (unknown, or a version of another task).
VersionStatus = Literal["draft", "active", "archived"]


@dataclass(frozen=True)
class Verdict:
    """Accepted, or rejected with a machine ``reason`` and a sentence for people (``detail``)."""

    accepted: bool
    reason: str | None = None
    detail: str | None = None

    @property
    def rejected(self) -> bool:
        return not self.accepted


ACCEPTED = Verdict(accepted=True)


def _rejected(reason: str, detail: str) -> Verdict:
    return Verdict(accepted=False, reason=reason, detail=detail)


def decide_task_created(life: TaskLife, name: str) -> Verdict:
    """The first create of a task id wins; a deleted id is never created again.

    Racing creates of one name derive the same id (name + generation) and meet on one
    partition, so "first" is log order. A deleted task's name is reused under a new id
    (the next generation), never by reviving the old one.
    """
    if life is TaskLife.ABSENT:
        return ACCEPTED
    return _rejected("duplicate_name", f"a task named {name!r} exists")


def decide_task_updated(life: TaskLife) -> Verdict:
    """Only a live task changes; an update of a missing or deleted task changes nothing."""
    if life is TaskLife.LIVE:
        return ACCEPTED
    return _rejected("task_missing", "the task does not exist")


def decide_task_deleted(life: TaskLife) -> Verdict:
    """Only a live task is deleted; deleting it again (or a task never created) changes nothing."""
    if life is TaskLife.LIVE:
        return ACCEPTED
    return _rejected("task_missing", "the task does not exist")


def decide_version_created(known: bool) -> Verdict:
    """The first ``PromptVersionCreated`` of a version id wins; a copy changes nothing.

    Version ids are derived (from the job, the registering request, the imported file), so a
    copy is a redelivered or re-appended original, and its number, text and status stay.
    """
    if not known:
        return ACCEPTED
    return _rejected("duplicate_version", "the version exists already")


def decide_prompt_activated(status: VersionStatus | None) -> Verdict:
    """Only a draft of the task becomes its active version (the active one is then archived).

    An archived version is not re-activated: returning to an old prompt is a new
    registration, so the history of what ran when stays readable.
    """
    if status == "draft":
        return ACCEPTED
    detail = "the version does not exist" if status is None else f"the version is {status}, not a draft"
    return _rejected("not_draft", detail)


#: What a consumer knows about a webhook subscription id: the same three states as a task's.
SubscriptionLife = TaskLife


def decide_subscription_created(life: SubscriptionLife) -> Verdict:
    """The first create of a subscription id wins; a deleted id is never created again.

    Subscription ids are drawn by the API, so a second create of an id is a copy of the
    first (redelivered or re-appended), and a create after the deletion must not revive it.
    """
    if life is TaskLife.ABSENT:
        return ACCEPTED
    return _rejected("duplicate_subscription", "the subscription exists already")


def decide_subscription_deleted(life: SubscriptionLife) -> Verdict:
    """Only a live subscription is deleted; deleting it again (or one never created) changes nothing.

    A deletion of an id nobody created leaves no mark, so a later create of that id is a
    first create (the API never appends that order; the same rule as a task's deletion).
    """
    if life is TaskLife.LIVE:
        return ACCEPTED
    return _rejected("subscription_missing", "the subscription does not exist")


def decide_key_created(*, known: bool, bootstrap: bool, any_key: bool) -> Verdict:
    """The first key of an id or a hash wins; a bootstrap key only while no key at all exists.

    ``known``: a key with this id or this hash exists (a copy of the event, or a clash);
    ``any_key``: any key exists, revoked ones included, so a bootstrap cannot come back
    once every key was revoked.
    """
    if bootstrap and any_key:
        return _rejected("keys_exist", "an API key exists already")
    if known:
        return _rejected("duplicate_key", "the key exists already")
    return ACCEPTED


def decide_key_revoked(*, active: bool, last_active_admin: bool, keep_last_admin: bool) -> Verdict:
    """An active key is revoked, unless the request keeps the last active admin key and this is it.

    ``active``: the key exists and is active; ``last_active_admin``: it is an active admin
    key and no other admin key is active. Revoking a revoked or unknown key changes nothing
    (``key_missing``).
    """
    if keep_last_admin and last_active_admin:
        return _rejected("last_admin", "the last active admin key cannot be revoked")
    if not active:
        return _rejected("key_missing", "the key is not active")
    return ACCEPTED
