"""Read-model queries, one module per resource. The API only reads these tables.

Functions take an open connection so a route can answer from one snapshot: a
synchronous ``Connection`` for the reads a route runs in one ``Reads.run`` work
(``services/api/reads.py``), an ``AsyncConnection`` for the rest; ``*_query`` builders
serve both. Ids are passed as ``uuid.UUID`` and stored as their canonical string.
"""
