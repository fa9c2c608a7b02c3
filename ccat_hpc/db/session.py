"""Engines and sessions, built from a URL when asked (never at import time).

SQLite (the embedded default) is set up for several processes at once: WAL journal,
a busy timeout, foreign keys on, and every transaction started with
``BEGIN IMMEDIATE`` so two writers queue for the lock instead of failing with
"database is locked" when a read transaction tries to become a write one.

URLs are our own (``ccat_hpc.config``): parsed there, turned into SQLAlchemy's URL with
``URL.create`` here, so a SQLite path or a password is never re-read as URL syntax.
An engine that may not create ops-db opens SQLite with ``mode=rw``: a missing file is
an error, never a new empty database. ``check_schema`` tells in one line why an
ops-db cannot be used by this ccat-hpc.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.config import DbUrl, parse_db_url
from ccat_hpc.db.revision import SCHEMA_HEAD
from ccat_hpc.errors import DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_MS = 60_000
UPGRADE_HINT = "run `ccat-hpc db upgrade`"
UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_url(path: str, create: bool) -> URL:
    if create:
        return URL.create("sqlite", database=path)
    if not Path(path).is_file():
        raise DatabaseUnavailable(f"no ops-db at {path} (to create it, run `ccat-hpc db upgrade`)")
    uri = "file:" + quote(path, safe="/")
    return URL.create("sqlite", database=uri, query={"mode": "rw", "uri": "true"})


def sqlalchemy_url(db: DbUrl, create: bool = True) -> URL:
    """SQLAlchemy's URL of ``db``; ``create=False``: a SQLite file must exist already."""
    if db.backend == "sqlite":
        return _sqlite_url(db.database or "", create)
    query: dict[str, list[str]] = {}
    for key, value in db.query:
        query.setdefault(key, []).append(value)
    return URL.create(
        db.drivername,
        username=db.username,
        password=db.password,
        host=db.host,
        port=db.port,
        database=db.database,
        query={key: values[0] if len(values) == 1 else values for key, values in query.items()},
    )


def make_engine(url: str | URL, *, create: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url`` (our URL text, see ccat_hpc.config) with ops-db's settings.

    ``create=False`` refuses a SQLite file that does not exist (DatabaseUnavailable)
    and never creates one.
    """
    if isinstance(url, str):
        url = sqlalchemy_url(parse_db_url(url), create)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _setup_sqlite(engine)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def _is_missing_table(exc: DBAPIError) -> bool:
    original = exc.orig
    if getattr(original, "sqlstate", None) == UNDEFINED_TABLE:
        return True
    return "no such table" in str(original)


def schema_revisions(engine: Engine) -> list[str]:
    """The revisions in ops-db's ``alembic_version`` (one query); [] when it has none."""
    with engine.connect() as connection:
        try:
            result = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            return [str(row) for row in result.scalars()]
        except DBAPIError as exc:
            if _is_missing_table(exc):
                return []
            raise


def check_schema(engine: Engine, shown_url: str) -> None:
    """Raise DatabaseUnavailable unless ops-db's schema is the one this ccat-hpc needs.

    ``shown_url`` names ops-db in the message (a redacted URL). Reading a revision
    other than SCHEMA_HEAD (rare) reads the migration scripts to tell older from newer.
    """
    revisions = schema_revisions(engine)
    if revisions == [SCHEMA_HEAD]:
        return
    if not revisions:
        raise DatabaseUnavailable(f"ops-db at {shown_url} has no schema: {UPGRADE_HINT}")
    from ccat_hpc.db.migrate import is_older_revision

    found = ", ".join(revisions)
    if len(revisions) == 1 and is_older_revision(revisions[0]):
        raise DatabaseUnavailable(
            f"ops-db at {shown_url}: schema is at {found}, "
            f"this ccat-hpc needs {SCHEMA_HEAD}: {UPGRADE_HINT}"
        )
    raise DatabaseUnavailable(
        f"ops-db at {shown_url}: schema {found} is newer than this ccat-hpc "
        f"(which knows up to {SCHEMA_HEAD}): upgrade ccat-hpc"
    )
