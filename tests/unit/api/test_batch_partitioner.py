"""A batch's records go to the partitions aiokafka's default partitioner picks, their key hashed once."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner

from shared.kafka.producer import KeyHashCache


def test_every_key_lands_where_the_default_partitioner_puts_it() -> None:
    cached, default = KeyHashCache(size=8), DefaultPartitioner()
    keys = [str(uuid.uuid4()).encode() for _ in range(50)]
    for partitions in ([0], [0, 1, 2], list(range(12))):
        for key in keys * 2:  # the second pass answers from the cache (and refills it past its size)
            assert cached(key, partitions, partitions) == default(key, partitions, partitions)


def test_a_key_is_hashed_once_while_it_stays_in_the_cache() -> None:
    cached = KeyHashCache()
    key = b"3f2b7c1e-0000-4000-8000-000000000001"
    first = cached(key, [0, 1, 2, 3], [0, 1, 2, 3])
    cached._hashes[key] += 1  # a changed entry shows the next call answers from the cache
    assert cached(key, [0, 1, 2, 3], [0, 1, 2, 3]) == (first + 1) % 4


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert {KeyHashCache()(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
