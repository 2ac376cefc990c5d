"""The shared batch-fold loop's error policy, with a fold step that refuses chosen records.

The transactions here are in memory (``MemoryTransactions``): a list of folded offsets and
an offsets map, copied into a transaction and written back only on commit, with
savepoints that restore the list. The step writes a record *before* refusing it, so a
savepoint that failed to undo it would show. The same policy over real SQLite is in
``test_batch_fold_sqlite.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import pytest
from aiokafka import ConsumerRecord

from shared import metrics
from shared.events import codec
from shared.events.topics import Topics
from shared.kafka.batch_fold import BatchFold, BeforeCommit, Following
from shared.kafka.consumer import Delivery
from shared.kafka.producer import EventLog, LogUnavailable
from tests.support import events as ev

TOPIC = "t.tasks"


class Refused(Exception):
    """The fake database refusing a record's data."""


def refused(exc: BaseException) -> str | None:
    return "the fake refused the data" if isinstance(exc, Refused) else None


def deliveries(n: int, *, undecodable: Sequence[int] = ()) -> list[Delivery]:
    task = ev.task_created()
    assert task.task_id is not None
    found = []
    for offset, envelope in enumerate([task, *ev.feedback(task.task_id, n - 1)]):
        value = codec.encode(envelope)
        record = ConsumerRecord(TOPIC, 0, offset, 0, 0, envelope.key, value, None, 0, len(value), [])
        found.append(Delivery(TOPIC, 0, offset, None if offset in undecodable else envelope, record))
    return found


class MemoryTransactions:
    """``FoldTransactions`` over memory; the step emits ``decided@<offset>`` per record it keeps."""

    def __init__(self, poison: Sequence[int] = (), broken: Sequence[int] = ()) -> None:
        self.poison, self.broken = set(poison), set(broken)
        self.committed: list[int] = []
        self.offsets: Following = {}
        self.wholes = 0
        self.commits_at_emit: list[list[int]] = []

    def step(self, folded: list[int], part: Sequence[Delivery]) -> list[str]:
        effects = []
        for d in part:
            if d.offset in self.broken:
                raise RuntimeError("not the data's fault")
            folded.append(d.offset)  # written, then refused: a savepoint must undo it
            if d.offset in self.poison:
                raise Refused
            effects.append(f"decided@{d.offset}")
        return effects

    async def whole(
        self, batch: Sequence[Delivery], following: Following, before_commit: BeforeCommit[str]
    ) -> None:
        self.wholes += 1
        folded = list(self.committed)
        effects = self.step(folded, batch)
        await before_commit(effects)
        self.committed, self.offsets = folded, {**self.offsets, **following}

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[MemorySavepoints]:
        held = MemorySavepoints(self)
        yield held
        self.committed, self.offsets = held.folded, {**self.offsets, **held.offsets}


class MemorySavepoints:
    def __init__(self, owner: MemoryTransactions) -> None:
        self.owner = owner
        self.folded = list(owner.committed)
        self.offsets: Following = {}

    async def attempt(self, part: Sequence[Delivery]) -> list[str]:
        savepoint = list(self.folded)
        try:
            return self.owner.step(self.folded, part)
        except BaseException:
            self.folded = savepoint
            raise

    async def store(self, following: Following) -> None:
        self.offsets.update(following)


class DeadLetters:
    """Stands in for the event log's dead-letter path: remembers what was sent."""

    def __init__(self) -> None:
        self.topics = Topics("t")
        self.sent: list[tuple[str, dict[str, bytes]]] = []

    async def send_raw(self, topic: str, value: Any, key: Any, headers: list[tuple[str, bytes]]) -> None:
        self.sent.append((topic, dict(headers)))

    def offsets(self) -> list[int]:
        return [int(headers["kaizen.offset"]) for _topic, headers in self.sent]


class Emitted:
    def __init__(self, transactions: MemoryTransactions, fail: bool = False) -> None:
        self.transactions, self.fail = transactions, fail
        self.calls: list[list[str]] = []

    async def __call__(self, effects: list[str]) -> None:
        self.transactions.commits_at_emit.append(list(self.transactions.committed))
        if self.fail:
            raise LogUnavailable("Kafka did not acknowledge the write")
        self.calls.append(effects)


def loop(
    transactions: MemoryTransactions, dead: DeadLetters | None, emit: Emitted | None = None
) -> BatchFold[str]:
    return BatchFold(
        transactions,
        consumer="tests",
        what="fake fold",
        group="t.tests",
        dead_letters=cast(EventLog, dead),
        emit=emit or Emitted(transactions),
        refused=refused,
    )


async def test_a_batch_without_poison_is_one_transaction_with_its_offsets_and_its_effects() -> None:
    memory, dead = MemoryTransactions(), DeadLetters()
    emit = Emitted(memory)
    await loop(memory, dead, emit).apply(deliveries(10))
    assert memory.wholes == 1
    assert memory.committed == list(range(10))
    assert memory.offsets == {(TOPIC, 0): 10}
    assert emit.calls == [[f"decided@{o}" for o in range(10)]]
    assert dead.sent == []


@pytest.mark.parametrize(
    "poison",
    [[3, 7, 8], [0], [11], [0, 11], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [5, 6]],
    ids=["several", "first", "last", "first-and-last", "every-record", "neighbours"],
)
async def test_each_poison_record_is_dead_lettered_with_its_reason_and_the_rest_kept_in_log_order(
    poison: list[int],
) -> None:
    memory, dead = MemoryTransactions(poison), DeadLetters()
    await loop(memory, dead).apply(deliveries(12))
    assert memory.committed == [o for o in range(12) if o not in poison]
    assert memory.offsets == {(TOPIC, 0): 12}  # the consumer moves past the poison
    assert dead.offsets() == poison
    for topic, headers in dead.sent:
        assert topic == "t.deadletter"
        assert headers["kaizen.reason"] == b"fake fold failed: the fake refused the data"
        assert headers["kaizen.group"] == b"t.tests"


async def test_effects_are_appended_once_before_the_commit_and_only_from_kept_parts() -> None:
    memory, dead = MemoryTransactions(poison=[2, 9]), DeadLetters()
    emit = Emitted(memory)
    await loop(memory, dead, emit).apply(deliveries(12))
    kept = [o for o in range(12) if o not in (2, 9)]
    # The whole batch's attempt emitted nothing: it failed before its effects were collected.
    assert emit.calls == [[f"decided@{o}" for o in kept]]
    assert memory.commits_at_emit == [[]]  # appended while nothing was committed yet
    assert memory.committed == kept


async def test_an_error_that_is_not_the_datas_fault_propagates_from_the_whole_batch_and_nothing_commits() -> (
    None
):
    memory, dead = MemoryTransactions(broken=[4]), DeadLetters()
    emit = Emitted(memory)
    with pytest.raises(RuntimeError, match="not the data's fault"):
        await loop(memory, dead, emit).apply(deliveries(8))
    assert (memory.committed, memory.offsets, emit.calls, dead.sent) == ([], {}, [], [])


async def test_an_error_that_is_not_the_datas_fault_during_a_bisection_propagates_and_nothing_commits() -> (
    None
):
    memory, dead = MemoryTransactions(poison=[1], broken=[6]), DeadLetters()
    emit = Emitted(memory)
    with pytest.raises(RuntimeError, match="not the data's fault"):
        await loop(memory, dead, emit).apply(deliveries(8))
    assert (memory.committed, memory.offsets, emit.calls) == ([], {}, [])
    # The poison met before the error was dead-lettered already: it will be again, at least once.
    assert dead.offsets() == [1]


async def test_effects_that_kafka_does_not_acknowledge_stop_the_fold_and_nothing_commits() -> None:
    for poison in ([], [3]):
        memory, dead = MemoryTransactions(poison), DeadLetters()
        with pytest.raises(LogUnavailable):
            await loop(memory, dead, Emitted(memory, fail=True)).apply(deliveries(6))
        assert (memory.committed, memory.offsets) == ([], {})


async def test_undecodable_records_are_passed_and_counted_as_the_consumers_dead_letters() -> None:
    undecodable = metrics.DEAD_LETTERS.labels("tests", "undecodable")
    refused_count = metrics.DEAD_LETTERS.labels("tests", "refused")
    before = (undecodable._value.get(), refused_count._value.get())
    memory, dead = MemoryTransactions(poison=[5]), DeadLetters()
    await loop(memory, dead).apply(deliveries(8, undecodable=[2, 3]))
    assert memory.committed == [0, 1, 4, 6, 7]  # the step never sees an undecodable record
    assert memory.offsets == {(TOPIC, 0): 8}
    assert (undecodable._value.get(), refused_count._value.get()) == (before[0] + 2, before[1] + 1)


async def test_a_rebuild_without_a_dead_letter_topic_passes_poison_it_cannot_send() -> None:
    memory = MemoryTransactions(poison=[2])
    await loop(memory, None).apply(deliveries(5))
    assert memory.committed == [0, 1, 3, 4]
    assert memory.offsets == {(TOPIC, 0): 5}


async def test_a_step_with_effects_and_no_emit_fails_rather_than_dropping_them() -> None:
    memory = MemoryTransactions()
    fold: BatchFold[str] = BatchFold(
        memory, consumer="tests", what="fake fold", group="g", dead_letters=None, refused=refused
    )
    with pytest.raises(TypeError, match="nothing emits them"):
        await fold.apply(deliveries(3))
    assert memory.committed == []


async def test_a_batch_of_several_partitions_stores_the_next_offset_of_each() -> None:
    batch = deliveries(6)
    other = [Delivery(TOPIC, 1, 40 + d.offset, d.envelope, d.record) for d in deliveries(3)]
    memory = MemoryTransactions(poison=[41])
    await loop(memory, DeadLetters()).apply([*batch, *other])
    assert memory.offsets == {(TOPIC, 0): 6, (TOPIC, 1): 43}
    assert memory.committed == [0, 1, 2, 3, 4, 5, 40, 42]
