"""Finding the poison records of a refused batch by bisection.

A consumer that folds batches applies each batch whole (one transaction with its offsets).
When the batch is refused because of its data, it is applied again part by part: a part
that applies is kept, a refused part is split in two, and a refused single record is
poison. The parts go in log order, so each record sees the effects of those before it, as
if the records had been applied one by one. ``k`` poison records in ``n`` cost about
``2·k·log2(n)`` attempts.

Used by the projector (``services.projector.projection``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def bisect(
    part: Sequence[T],
    attempt: Callable[[Sequence[T]], Awaitable[None]],
    refused: Callable[[BaseException], str | None],
    poisoned: Callable[[T, str], Awaitable[None]],
) -> None:
    """Apply ``part`` with ``attempt``, splitting it while ``refused`` names a reason.

    ``attempt`` must undo its own effects when it raises (run it in a savepoint). A single
    refused record goes to ``poisoned`` with the reason. An error ``refused`` does not
    recognise (``None``) propagates: the consumer must stop, not skip.
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
