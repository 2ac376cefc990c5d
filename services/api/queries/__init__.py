"""Read-model queries, one module per resource. The API only reads these tables.

Functions take an open ``AsyncConnection`` so a route can answer from one snapshot;
ids are passed as ``uuid.UUID`` and stored as their canonical string.
"""
