"""The read model: tables the projector writes and the API reads.

It is a pure fold of the log (``kaizen replay`` rebuilds it), so its schema changes by
replay, not by data migrations. SQLite by default, PostgreSQL in production.
"""
