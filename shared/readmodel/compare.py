"""Comparing two read models row by row (``kaizen replay --dry-run``, replay tests)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.readmodel.tables import heartbeats, metadata, projector_offsets, service_loops

# Offsets differ by design (a rebuild stops at the log's end as of its start), and
# heartbeats live on a short-retention topic; everything else must be identical.
SKIPPED = {projector_offsets.name, heartbeats.name, service_loops.name}


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


async def _rows(engine: AsyncEngine, table: Table) -> dict[str, str]:
    keys = [c for c in table.primary_key.columns]
    async with engine.connect() as conn:
        result = await conn.execute(select(table).order_by(*keys))
        rows = [dict(r._mapping) for r in result.all()]
    return {_canonical({c.name: row[c.name] for c in keys}): _canonical(row) for row in rows}


async def differences(live: AsyncEngine, rebuilt: AsyncEngine, limit: int = 20) -> list[str]:
    """Human-readable differences between two read models (empty when identical)."""
    found: list[str] = []
    for table in metadata.sorted_tables:
        if table.name in SKIPPED:
            continue
        a, b = await _rows(live, table), await _rows(rebuilt, table)
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                found.append(f"{table.name} {key}:\n  live:    {a.get(key)}\n  rebuilt: {b.get(key)}")
                if len(found) >= limit:
                    return found
    return found
