"""Which database errors are the data's fault: those are dead-lettered, all others stop the consumer."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from shared.readmodel.db import refused_data

INSERT = "INSERT INTO feedback (id, output) VALUES ($1::VARCHAR, $2::VARCHAR)"


class PgError(Exception):
    """What asyncpg's adapter (and psycopg) raise: the SQLSTATE in ``sqlstate``."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _pg(
    code: str, message: str = "invalid byte sequence", params: tuple[str, ...] | None = None
) -> DBAPIError:
    return DBAPIError(INSERT, params, PgError(message, code), hide_parameters=True)


@pytest.mark.parametrize("code", ["22021", "22001", "22003", "22P05", "23505", "23502"])
def test_postgresql_data_and_integrity_errors_are_the_datas_fault(code: str) -> None:
    reason = refused_data(_pg(code))
    assert reason == f"the database refused the data: SQLSTATE {code} (PgError) in INSERT INTO feedback"


@pytest.mark.parametrize("code", ["08006", "53300", "57P01", "40001", "42P01", "XX000"])
def test_postgresql_errors_of_other_classes_are_not_the_datas_fault(code: str) -> None:
    assert refused_data(_pg(code)) is None


def test_the_reason_never_quotes_the_drivers_message_or_the_parameters() -> None:
    exc = _pg("22000", "invalid input for query argument $2: 'my secret'", params=("id", "my secret"))
    reason = refused_data(exc)
    assert reason is not None and "secret" not in reason


def test_sqlite_integrity_and_data_errors_are_the_datas_fault() -> None:
    integrity = IntegrityError(INSERT, None, sqlite3.IntegrityError("UNIQUE constraint failed"))
    overflow = DataError(INSERT, None, OverflowError("Python int too large"))
    assert refused_data(integrity) == "the database refused the data: IntegrityError in INSERT INTO feedback"
    assert refused_data(overflow) == "the database refused the data: OverflowError in INSERT INTO feedback"


def test_a_locked_or_missing_sqlite_database_is_not_the_datas_fault() -> None:
    locked = OperationalError(INSERT, None, sqlite3.OperationalError("database is locked"))
    assert refused_data(locked) is None


def test_errors_outside_the_database_are_not_the_datas_fault() -> None:
    assert refused_data(KeyError("job")) is None
    assert refused_data(ValueError("bad")) is None
