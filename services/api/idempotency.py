"""``Idempotency-Key`` on feedback, batch and seed writes: a retry never writes twice.

A request that carries the header derives its events' ids from the API key, the route,
the header and the item's place in the request (``domain.request_event_id``), not at
random. What follows:

- a retry appends nothing when the read model already holds the rows of the first
  attempt, and answers from those rows: the first answer;
- a retry that comes before the first attempt is visible (the 503 or 504 whose write
  did land) appends the same ids again; the projector keeps the first write of an id, so
  the read model never holds a duplicate;
- a retry whose item differs from the row its id wrote is refused with a 422
  ``idempotency-key-reused`` problem (the row's stored fields are the first body's hash).

An item refused the first time wrote nothing, so its retry is judged afresh.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from sqlalchemy import Connection, select

from services.api import domain
from services.api.keyring import KeyRecord
from services.api.problems import ProblemError
from shared.events.feedback import FeedbackRecorded
from shared.kafka.producer import Position
from shared.readmodel.tables import feedback

HEADER = "Idempotency-Key"
#: Tells a client the answer is the first attempt's, read back from the read model.
REPLAYED = "Idempotent-Replayed"
#: Ids per ``IN (…)``: far below SQLite's and PostgreSQL's bound-parameter limits.
LOOKUP_CHUNK = 500

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7e]+$",
        description=(
            "Any unique string per logical write (a UUID is a good choice). A retry with the same key "
            "and the same body returns the first answer and writes nothing twice, even after a 503 or "
            "504; the same key with a different body is a 422 `idempotency-key-reused`. Scoped to the "
            "API key and the route."
        ),
    ),
]


@dataclass(frozen=True)
class Scope:
    """Where a keyed request's ids come from."""

    key_id: str
    route: str
    token: str

    def event_id(self, *parts: object) -> uuid.UUID:
        return domain.request_event_id(self.key_id, self.route, self.token, *parts)


def scope(key: KeyRecord, route: str, token: str | None) -> Scope | None:
    return None if token is None else Scope(key.id, route, token)


def feedback_rows_in(conn: Connection, ids: Iterable[uuid.UUID]) -> dict[str, Any]:
    """The feedback rows (seeds included) with these ids, by id.

    Synchronous, so it runs inside one ``Reads.run`` work with the route's other reads.
    """
    wanted = [str(i) for i in ids]
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        query = select(feedback).where(feedback.c.id.in_(wanted[start : start + LOOKUP_CHUNK]))
        found.update({row.id: row for row in conn.execute(query).all()})
    return found


def overwritten(events: Sequence[FeedbackRecorded], positions: Sequence[Position], conn: Connection) -> bool:
    """After a keyed batch was applied: did a racing attempt with another body write one of its ids first?

    The projector keeps the first write of an id and stores the record's offset with the
    row. A row of the same task (so the same key, the same partition) at the offset our
    own event got was written by that event: nothing to compare, and nothing of it is
    decoded. Only the other rows (an earlier attempt's write that landed, or a racing
    one) are read whole and compared by fingerprint, as :func:`check_written_in` does. For a
    500-item batch the whole-row read-back and its fingerprints were 17 % of the API's
    CPU under load.
    """
    ours = {str(e.feedback_id): (e, p) for e, p in zip(events, positions, strict=True)}
    ids = list(ours)
    others: list[str] = []
    for start in range(0, len(ids), LOOKUP_CHUNK):
        query = select(feedback.c.id, feedback.c.task_id, feedback.c.log_offset).where(
            feedback.c.id.in_(ids[start : start + LOOKUP_CHUNK])
        )
        for row in conn.execute(query).all():
            event, position = ours[row.id]
            if row.log_offset != position.offset or row.task_id != str(event.task_id):
                others.append(row.id)
    rows = feedback_rows_in(conn, [uuid.UUID(i) for i in others])
    return any(
        stored_fingerprint(row) != domain.fingerprint(ours[i][0].model_dump(mode="json"))
        for i, row in rows.items()
    )


def stored_fingerprint(row: Any) -> str:
    return domain.fingerprint({name: getattr(row, name) for name in domain.FEEDBACK_FIELDS})


def reused(where: Sequence[int | str] = ()) -> ProblemError:
    """The key came back with a body that differs from the one it first wrote."""
    detail = f"the {HEADER} was used before with a different body; use a new key for a new request"
    if where:
        detail += f" (different: {', '.join(str(w) for w in where[:20])})"
    return ProblemError(422, detail, title="Idempotency key reused", slug="idempotency-key-reused")


def check_written_in(conn: Connection, items: dict[str, dict[str, Any]]) -> None:
    """After a keyed write: a racing attempt with another body may have written an id first.

    ``items`` by id; raises :func:`reused` when a row holds another body than its item.
    Inside a ``Reads.run`` work begun after the write returned, so the rows are there.
    """
    rows = feedback_rows_in(conn, [uuid.UUID(i) for i in items])
    if any(stored_fingerprint(row) != domain.fingerprint(items[i]) for i, row in rows.items()):
        raise reused()
