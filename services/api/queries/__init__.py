"""Read-model queries, one module per resource. The API only reads these tables.

Functions take an open synchronous ``Connection`` so a route runs its related reads in
one ``Reads.run`` work, from one snapshot (``services/api/reads.py``). The few that take
an ``AsyncConnection`` serve the health checks (``health.py``) and ``deps.active_key``'s
read-model fallback (``keys.active_by_hash``). Ids are passed as ``uuid.UUID`` and stored
as their canonical string.
"""
