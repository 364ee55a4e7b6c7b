"""The sqlite metadata database of a loopback Airflow: the local stack's (devstack/airflow_local.py) and the tests'
(tests/fixtures/airflow_api.py). Every component and task of one Airflow shares the one file, on a busy machine.

- How long a statement waits for sqlite's one write lock is the ``timeout`` of the connection URL: pysqlite's
  parameter, which SQLAlchemy's sqlite dialects read from the URL's query string ("URI Connections",
  https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#uri-connections). It reaches both of Airflow 3's engines:
  the async one's URL is derived from ``[database] sql_alchemy_conn`` with its query kept (aiosqlite's dialect is
  pysqlite's), while ``[database] sql_alchemy_connect_args`` applies to the synchronous engine only since 3.1
  (config.yml: "Changed in 3.1.0"; the async engine reads ``sql_alchemy_connect_args_async``). Airflow 2.10 has
  the synchronous engine only.
- Write-ahead logging (a property of the file, set once): readers no longer block a writer, nor a writer readers.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

# How long a write waits for the write lock: more than pysqlite's 5 s (four components and every task share the file
# on a busy machine), not minutes: Airflow 3's API server writes its audit log from its event loop, so while another
# of its requests holds the lock the whole server waits this long (at 120 s the scheduler and every task stalled for
# 4 minutes and a finished task was killed: tests/devstack/test_demo_e2e.py, 2026-12-07). A client that is refused
# meanwhile (a 5xx, "Database error") asks again; the controller does at its next poll, the tests until a deadline.
SQLITE_LOCK_WAIT_SECONDS = 15


def sqlite_conn(database: Path) -> str:
    """``[database] sql_alchemy_conn`` for the database file: an absolute path, with the lock wait."""
    return f"sqlite:///{database}?timeout={SQLITE_LOCK_WAIT_SECONDS}"


def use_write_ahead_log(database: Path) -> None:
    """Switch the (migrated) database file to write-ahead logging; it stays so for every later connection."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
