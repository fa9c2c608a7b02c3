"""ops-db through its DB-API driver alone (sqlite3, psycopg), for ``ccat-hpc job run``.

Every array task records its start and its end in ops-db. Importing SQLAlchemy for
that (and its ORM, and every model) costs a short task more CPU time than its work
does (``benchmarks/startup_benchmark.py``), so the runner's own rows are read and
written with the driver (:mod:`ccat_hpc.jobs.task_rows`); a handler that needs the
ORM still gets it, on first use.

The connection is set up as :mod:`ccat_hpc.db.session` sets up the engine's: SQLite
opened read-write without ever creating the file, with the same pragmas (a test
compares them) and every transaction started with ``BEGIN IMMEDIATE``; PostgreSQL
through psycopg with the URL's parts and options, as SQLAlchemy passes them. A URL
whose options SQLAlchemy would rewrite (a repeated option, a ``host=`` with a port
in it), an ops-db that cannot be opened or whose schema is not the one this
ccat-hpc needs: :func:`open_direct` returns None, and the caller goes through
SQLAlchemy, which works or says why in the words every command uses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from ccat_hpc.config import DbUrl
from ccat_hpc.db.revision import SCHEMA_HEAD

#: as ``ccat_hpc.db.session.SQLITE_BUSY_TIMEOUT_MS`` (imported there with SQLAlchemy)
SQLITE_BUSY_TIMEOUT_MS = 60_000
SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = NORMAL",
)

Row = Sequence[Any]


class Connection(Protocol):
    """What is used of a DB-API connection (sqlite3's, psycopg's)."""

    def cursor(self) -> Any: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class DirectDb:
    """One DB-API connection to ops-db; ``transaction()`` runs statements in one transaction."""

    def __init__(self, connection: Connection, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect

    @property
    def operational_errors(self) -> tuple[type[Exception], ...]:
        """The driver's errors of a database that cannot be used (locked, gone, down)."""
        if self.dialect == "sqlite":
            return (sqlite3.OperationalError,)
        import psycopg

        return (psycopg.OperationalError,)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement (the driver's placeholders); its rows, if it returns any."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description is not None else []
        finally:
            cursor.close()

    @contextmanager
    def transaction(self) -> Iterator[DirectDb]:
        """Commit on success, roll back on any error."""
        if self.dialect == "sqlite":
            self.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.connection.rollback()
            raise
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()


def open_direct(db: DbUrl) -> DirectDb | None:
    """A connection to ops-db at this ccat-hpc's schema, or None (see the module's text)."""
    if db.backend == "sqlite":
        return _checked(_connect_sqlite, db, sqlite3.Error)
    params = postgres_params(db)
    if params is None:
        return None
    import psycopg

    return _checked(
        lambda _db: DirectDb(psycopg.connect(**params), "postgresql"), db, psycopg.Error
    )


def _checked(
    connect: Callable[[DbUrl], DirectDb], db: DbUrl, errors: type[Exception]
) -> DirectDb | None:
    try:
        direct: DirectDb = connect(db)
    except errors:
        return None
    try:
        revisions = [row[0] for row in direct.execute("SELECT version_num FROM alembic_version")]
        direct.connection.rollback()  # PostgreSQL: end the transaction the SELECT began
    except errors:
        revisions = []
    if revisions != [SCHEMA_HEAD]:
        direct.close()
        return None
    return direct


def _connect_sqlite(db: DbUrl) -> DirectDb:
    path = db.database or ""
    if not Path(path).is_file():
        raise sqlite3.OperationalError(f"no ops-db at {path}")  # never created here
    uri = "file:" + quote(path, safe="/") + "?mode=rw"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None)  # we issue BEGIN
    try:
        for pragma in SQLITE_PRAGMAS:
            connection.execute(pragma)
    except sqlite3.Error:
        connection.close()
        raise
    return DirectDb(connection, "sqlite")


def postgres_params(db: DbUrl) -> dict[str, Any] | None:
    """psycopg's connection parameters of ``db``, as SQLAlchemy passes them; None for the
    URL options SQLAlchemy rewrites (a repeated option, a ``host=`` holding a port)."""
    keys = [key for key, _ in db.query]
    query = dict(db.query)
    if len(set(keys)) != len(keys) or ":" in query.get("host", ""):
        return None
    parts = {
        "host": db.host,
        "port": db.port,
        "user": db.username,
        "password": db.password,
        "dbname": db.database,
    }
    return {key: value for key, value in parts.items() if value} | query  # as SQLAlchemy
