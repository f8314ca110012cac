"""A lock on a node's database held by another client, as an operator's tool would hold it:
the whole SQLite file (``BEGIN EXCLUSIVE``) or PostgreSQL's ``state`` table (``ACCESS
EXCLUSIVE``, what ``VACUUM FULL`` or an ``ALTER TABLE`` takes)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG_URL = os.environ.get("LC_TEST_POSTGRES_URL",
                        "postgresql+psycopg2://lc:lc@127.0.0.1:5432/lc_test")
"""The local PostgreSQL of ``make system`` (cases marked ``postgres`` take it in turn)."""


@contextmanager
def foreign_lock(db_url: str) -> Iterator[None]:
    """Hold the lock from another connection until the block ends, then release it."""
    if db_url.startswith("sqlite"):
        locker = sqlite3.connect(sa.engine.make_url(db_url).database or "",
                                 isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            locker.rollback()
            locker.close()
        return
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn, conn.begin() as held:
            conn.exec_driver_sql("LOCK TABLE state IN ACCESS EXCLUSIVE MODE")
            yield
            held.rollback()
    finally:
        engine.dispose()
