"""One batch-fold loop for the stored-offset consumers, with one error policy.

The projector, the optimizer's trigger and the PR publisher fold the log into a database
of their own and store the next offsets in the same transaction (``shared.kafka.offsets``).
Each hands :class:`BatchFold` its per-record work, a *fold step*; the loop does the rest:

1. **Whole.** Fold the batch in one transaction, store its offsets, append the step's
   effects that leave the database (the optimizer's decisions), then commit. The effects
   are acknowledged before the commit: a crash in between re-derives them (same ids) on
   redelivery and consumers dedupe them.
2. **Refused data.** When the database refuses the batch's *data* (``refused``:
   SQLSTATE 22/23, values SQLite cannot bind; :func:`shared.readmodel.db.refused_data`),
   the batch is folded again in one transaction, part by part, each part in a savepoint
   (:func:`bisect`): a part that applies is kept, a refused part is split, a refused
   single record is poison and goes to the dead-letter topic with its reason. The
   effects of the kept parts only are appended, once, before the commit, with the
   offsets of the whole batch: the consumer moves on.
3. **Anything else** (database unreachable, disk full, a bug, Kafka not acknowledging
   the effects) propagates and nothing commits: the process stops loudly and, restarted,
   meets the batch again.

Records that could not be decoded (``Delivery.envelope is None``) were dead-lettered by
the consumer already; the loop passes their offsets and counts them.

The abstraction is :class:`FoldTransactions`: a transaction a batch can be folded in
whole, or held open to fold parts of it in savepoints. Two implementations
(``shared/kafka/fold_transactions.py``), because a fold step is one of two kinds:

- ``InWorkerThread`` — a synchronous step (``step(Connection, part)``) run through
  :class:`shared.readmodel.transactions.Transactions`: the whole batch is one trip to a worker
  thread on a SQLite file (the projector; measured 2–4× better lag than a trip per
  statement). Such a step has no effects outside the database: it cannot await an
  append from inside the worker thread's trip, and the trip is why it is synchronous.
- ``OnAsyncConnection`` — an async step (``await step(AsyncConnection, part)``)
  on an ``AsyncEngine`` (the optimizer and the publisher, whose handlers await their
  statements), which returns its effects.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from shared import metrics
from shared.kafka.consumer import Delivery, dead_letter
from shared.kafka.producer import EventLog
from shared.readmodel.db import refused_data

log = logging.getLogger(__name__)

T = TypeVar("T")
#: An effect of a fold step that leaves the database (appended to Kafka before the commit).
E = TypeVar("E")

#: ``(topic, partition) → next offset to read``, stored with the batch's rows.
Following = dict[tuple[str, int], int]
BeforeCommit = Callable[[list[E]], Awaitable[None]]


class Savepoints(Protocol[E]):
    """A transaction held open over a batch: parts of it are folded, each in a savepoint."""

    async def attempt(self, part: Sequence[Delivery]) -> list[E]:
        """Fold ``part`` in a savepoint and return its effects; nothing of it stays when it raises."""
        ...

    async def store(self, following: Following) -> None:
        """Store the next offsets in the transaction."""
        ...


class FoldTransactions(Protocol[E]):
    """Where a fold step runs: a whole batch in one transaction, or a held one with savepoints."""

    async def whole(
        self, batch: Sequence[Delivery], following: Following, before_commit: BeforeCommit[E]
    ) -> None:
        """Fold ``batch``, store ``following``, await ``before_commit(effects)``, commit; all or nothing."""
        ...

    def held(self) -> contextlib.AbstractAsyncContextManager[Savepoints[E]]:
        """One transaction over several savepoints: committed when the block ends, undone if it raises."""
        ...


class BatchFold(Generic[E]):
    """Applies batches of deliveries through a fold step with the module's error policy.

    ``consumer`` labels the dead-letter metric; ``what`` starts each dead letter's reason
    (``projection failed: …``); ``group`` goes in its ``kaizen.group`` header.
    ``dead_letters`` is ``None`` only for a rebuild from a log whose live consumer
    dead-lettered its poison already: poison is then logged and passed.
    ``emit`` appends the effects of the kept parts, before the commit.
    """

    def __init__(
        self,
        transactions: FoldTransactions[E],
        *,
        consumer: str,
        what: str,
        group: str,
        dead_letters: EventLog | None,
        emit: BeforeCommit[E] | None = None,
        refused: Callable[[BaseException], str | None] = refused_data,
    ) -> None:
        self.transactions = transactions
        self.consumer = consumer
        self.what = what
        self.group = group
        self.dead_letters = dead_letters
        self.emit = emit
        self.refused = refused

    async def apply(self, deliveries: Sequence[Delivery]) -> None:
        """Fold ``deliveries`` and store the offsets after them (see the module's docstring)."""
        if not deliveries:
            return
        decoded = [d for d in deliveries if d.envelope is not None]
        following = next_offsets(deliveries)
        try:
            await self.transactions.whole(decoded, following, self._before_commit)
        except Exception as exc:
            reason = self.refused(exc)
            if reason is None:
                raise
            log.warning(
                "%s: a batch of %d records was refused (%s); bisecting it", self.what, len(decoded), reason
            )
            await self._bisected(decoded, following)
        undecodable = len(deliveries) - len(decoded)
        if undecodable and self.dead_letters is not None:  # the consumer dead-lettered them
            metrics.DEAD_LETTERS.labels(self.consumer, "undecodable").inc(undecodable)

    async def _bisected(self, decoded: Sequence[Delivery], following: Following) -> None:
        async with self.transactions.held() as held:
            # Offsets first, before any savepoint: sqlite3 (aiosqlite) opens a transaction only
            # before a write, and a savepoint issued outside one is the transaction itself
            # (released, it would commit the kept part without the offsets).
            await held.store(following)
            kept: list[E] = []

            async def attempt(part: Sequence[Delivery]) -> None:
                kept.extend(await held.attempt(part))

            await bisect(decoded, attempt, self.refused, self._poisoned)
            await self._before_commit(kept)

    async def _before_commit(self, effects: list[E]) -> None:
        if not effects:
            return
        if self.emit is None:
            raise TypeError(f"{self.what}: the fold step has effects but nothing emits them")
        await self.emit(effects)

    async def _poisoned(self, delivery: Delivery, reason: str) -> None:
        # Only the data's fault is poison: retrying the record would fail for ever.
        why = f"{self.what} failed: {reason}"
        if self.dead_letters is None:
            log.warning("skipping %s[%d]@%d: %s", delivery.topic, delivery.partition, delivery.offset, why)
            return
        await dead_letter(self.dead_letters, delivery.record, why, self.group)
        metrics.DEAD_LETTERS.labels(self.consumer, "refused").inc()


def next_offsets(deliveries: Sequence[Delivery]) -> Following:
    """The next offset to read of each partition the batch holds."""
    following: Following = {}
    for d in deliveries:
        key = (d.topic, d.partition)
        following[key] = max(following.get(key, 0), d.offset + 1)
    return following


# -- bisection ------------------------------------------------------------------------------


async def bisect(
    part: Sequence[T],
    attempt: Callable[[Sequence[T]], Awaitable[None]],
    refused: Callable[[BaseException], str | None],
    poisoned: Callable[[T, str], Awaitable[None]],
) -> None:
    """Apply ``part`` with ``attempt``, splitting it while ``refused`` names a reason.

    The parts go in log order, so each record sees the effects of those before it, as if
    the records had been applied one by one; ``k`` poison records in ``n`` cost about
    ``2·k·log2(n)`` attempts. ``attempt`` must undo its own effects when it raises (run it
    in a savepoint). A single refused record goes to ``poisoned`` with the reason. An error
    ``refused`` does not recognise (``None``) propagates: the consumer must stop, not skip.
    """
    if not part:
        return
    try:
        await attempt(part)
        return
    except Exception as exc:
        reason = refused(exc)
        if reason is None:
            raise
        if len(part) == 1:
            await poisoned(part[0], reason)
            return
    middle = len(part) // 2
    await bisect(part[:middle], attempt, refused, poisoned)
    await bisect(part[middle:], attempt, refused, poisoned)
