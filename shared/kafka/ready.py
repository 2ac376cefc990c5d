"""Readiness of a Kafka cluster, as our clients see it.

An open port is not readiness: the socket accepts connections before the broker serves
requests, and a fresh KRaft node answers metadata before it can host the group and
transaction coordinators. ``wait_ready`` returns once a consumer group and a
transactional producer would both find their coordinator. Asking for them also makes the
broker create ``__consumer_offsets`` and ``__transaction_state``, so the first real
consumer or transaction does not pay for that.

Works for any cluster: the local broker (``kaizen kafka start``), a container, or an
existing cluster named by ``KAIZEN_KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.kafka.security import KafkaSecurity, client_options

_PROBE_ID = "kaizen-readiness-probe"
_GROUP_COORDINATOR = 0
_TRANSACTION_COORDINATOR = 1
# One attempt must fit well inside a short overall timeout, so a stuck request is retried
# instead of eating the whole budget.
_REQUEST_TIMEOUT_MS = 5_000
_RETRY_PAUSE_SECONDS = 0.5


class KafkaNotReadyError(TimeoutError):
    """The cluster did not become ready in time; the message names the last failure."""


class _NoBrokerYet(Exception):
    """Metadata answered but listed no broker (a KRaft node that has not registered yet)."""


# A timeout parameter rather than the caller's asyncio.timeout: the deadline must also end
# the retries with an error that names what was still failing.
async def wait_ready(
    bootstrap: str,
    timeout: float,  # noqa: ASYNC109
    *,
    security: KafkaSecurity | None = None,
    brokers: int = 1,
) -> None:
    """Return once ``bootstrap`` lists ``brokers`` brokers and serves group and transaction coordinators.

    ``bootstrap`` is ``host:port[,host:port...]``; ``security`` says how to connect
    (``None``: this process's ``KAIZEN_KAFKA_*`` settings). Raises
    :class:`KafkaNotReadyError` after ``timeout`` seconds, with the last error seen.
    """
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(remaining):
                await _probe(bootstrap, security, brokers)
            return
        except TimeoutError:
            break  # the overall deadline hit mid-attempt; keep the more telling earlier error
        except (KafkaError, OSError, _NoBrokerYet) as exc:
            last_error = _describe(exc)
        await asyncio.sleep(min(_RETRY_PAUSE_SECONDS, max(deadline - time.monotonic(), 0)))
    raise KafkaNotReadyError(f"Kafka at {bootstrap} was not ready within {timeout:g}s ({last_error})")


async def _probe(bootstrap: str, security: KafkaSecurity | None, brokers: int) -> None:
    """One readiness attempt with a fresh client: a failed bootstrap leaves a client unusable."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=_REQUEST_TIMEOUT_MS, **client_options(security)
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        if len(cluster.get("brokers") or ()) < brokers:
            raise _NoBrokerYet(f"metadata lists {len(cluster.get('brokers') or ())} of {brokers} brokers")
        await admin.find_coordinator(_PROBE_ID, _GROUP_COORDINATOR)
        await admin.find_coordinator(_PROBE_ID, _TRANSACTION_COORDINATOR)
    finally:
        await admin.close()


def _describe(exc: BaseException) -> str:
    """``Name: text``; aiokafka's errors already start with their name, OSError's do not."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}"
