"""``kaizen replay``: rebuild the read model from the log, compare, and swap it in."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from rich.console import Console
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projector.bootstrap import rebuild
from shared.events.topics import Topics
from shared.readmodel.compare import differences
from shared.readmodel.db import make_engine
from shared.readmodel.tables import heartbeats
from shared.settings import Settings

out = Console()


async def run_replay(settings: Settings, *, dry_run: bool, force: bool) -> int:
    live_url = settings.resolved_database_url
    fresh_url = await _fresh_database(live_url)
    started = time.monotonic()
    with out.status("Rebuilding the read model from the start of the log"):
        applied = await rebuild(settings.resolved_kafka_bootstrap, Topics(settings.topic_prefix), fresh_url)
    seconds = time.monotonic() - started
    out.print(
        f"Rebuilt from {applied} records in {seconds:.1f} s ({applied / max(seconds, 1e-9):.0f} records/s)."
    )
    live, fresh = make_engine(live_url), make_engine(fresh_url)
    try:
        diffs = await differences(live, fresh)
        if diffs:
            out.print(
                f"[yellow]{len(diffs)} difference(s) between the live and the rebuilt model[/] (first ones):"
            )
            for line in diffs:
                out.print(line, markup=False)
        else:
            out.print("The rebuilt read model is identical to the live one.")
        if dry_run:
            out.print(f"Dry run: nothing swapped. The rebuilt model is at {fresh_url}")
            return 1 if diffs else 0
        if not force and await _projector_alive(live, settings.heartbeat_seconds):
            out.print(
                "[red]A projector sent a heartbeat just now: stop `kaizen up` (or the projector) first,[/] "
                "or pass --force."
            )
            return 3
    finally:
        await live.dispose()
        await fresh.dispose()
    await _swap(live_url, fresh_url)
    out.print(f"Swapped the rebuilt read model in at {live_url}.")
    return 0


async def _projector_alive(engine: AsyncEngine, interval: float) -> bool:
    async with engine.connect() as conn:
        times = (
            await conn.execute(select(heartbeats.c.time).where(heartbeats.c.service == "projector"))
        ).scalars()
        newest: dt.datetime | None = max(times, default=None)
    if newest is None:
        return False
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - newest).total_seconds() < 3 * interval


async def _fresh_database(live_url: str) -> str:
    url = make_url(live_url)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "kaizen.db")
        return str(url.set(database=str(path.with_name(f"{path.name}.replay-{stamp}"))))
    name = f"{url.database}_replay_{stamp}"
    await _pg_admin(live_url, f'CREATE DATABASE "{name}"')
    return str(url.set(database=name))


async def _swap(live_url: str, fresh_url: str) -> None:
    live, fresh = make_url(live_url), make_url(fresh_url)
    if live.get_backend_name() == "sqlite":
        live_path = Path(live.database or "")
        for suffix in ("-wal", "-shm"):
            Path(f"{live_path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 (a one-off CLI step)
        os.replace(str(fresh.database), live_path)
        return
    old = f"{live.database}_old_{dt.datetime.now(dt.UTC).strftime('%Y%m%d%H%M%S')}"
    await _pg_admin(
        live_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", live.database
    )
    await _pg_admin(live_url, f'ALTER DATABASE "{live.database}" RENAME TO "{old}"')
    await _pg_admin(live_url, f'ALTER DATABASE "{fresh.database}" RENAME TO "{live.database}"')
    out.print(f"The previous read model is kept as database {old}; drop it when satisfied.")


async def _pg_admin(url: str, sql: str, *args: object) -> None:
    import asyncpg

    admin = make_url(url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()
