"""A consumer's local state stamped with the version of the fold that wrote it.

The optimizer and the PR publisher keep a fold of the task topic in a database of their
own (SQLite by default). When a new release keeps something the old fold did not (a
column, a status, a rule of ``shared.decisions``), a database written by the old fold is
not wrong, it is incomplete, and it cannot be completed in place: what it lacks is in
the log. So such a database is emptied at start, offsets included, and the consumer folds
the log from its beginning, as a new instance that was never assigned those partitions
would. Both consumers act on requests only once caught up, so requests whose outcome is
already in the log end as done again and nothing is run, published or imported twice.
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, Connection, Integer, MetaData, Table, insert, inspect, select, text

log = logging.getLogger(__name__)

STAMP_TABLE = "fold_version"


def stamp_table(metadata: MetaData) -> Table:
    return Table(STAMP_TABLE, metadata, Column("version", Integer, nullable=False))


def create_or_refold(
    conn: Connection, metadata: MetaData, version: int, *, retired: tuple[str, ...] = ()
) -> bool:
    """Create ``metadata``'s tables; True when the database held another fold and was emptied.

    ``metadata`` must hold the table of :func:`stamp_table`. ``retired``: tables of older
    fold versions that this one no longer has (dropped with the rest).
    """
    stamp = metadata.tables[STAMP_TABLE]
    stamped = conn.scalar(select(stamp.c.version)) if inspect(conn).has_table(STAMP_TABLE) else None
    if stamped == version:
        metadata.create_all(conn)
        return False
    had_state = bool(inspect(conn).get_table_names())
    metadata.drop_all(conn)
    for name in retired:
        conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    metadata.create_all(conn)
    conn.execute(insert(stamp).values(version=version))
    if had_state:
        log.warning(
            "local state written by fold version %s, this is version %d: emptied; the log is folded "
            "again from its beginning",
            stamped if stamped is not None else "1 (unstamped)",
            version,
        )
    return had_state
