"""alembic environment of ops-db; works on PostgreSQL and SQLite (batch mode).

The engine comes from ``config.attributes["engine"]`` (see ccat_hpc.db.migrate): the
URL never goes through alembic's ConfigParser, where a %-encoded password breaks.

On SQLite, batch mode rebuilds a table by copying it and dropping the old one; with
foreign keys on, dropping a table other rows refer to fails. So foreign keys are off
while migrating (a PRAGMA that only works outside a transaction), the references are
checked after the migrations, and foreign keys are on again before the connection goes
back to the pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, Engine

import ccat_hpc.db.models  # noqa: F401  (registers every table)
from ccat_hpc.db.base import Base, UTCDateTime

config = context.config


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write project types as plain SQLAlchemy types, so revisions never import the app."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("run migrations with `ccat-hpc db …` (ccat_hpc.db.migrate)")
    return engine


def _check_references(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise RuntimeError(f"migration left rows with broken references in {', '.join(tables)}")


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    if connection.dialect.name != "sqlite":
        yield
        return
    driver_connection: Any = connection.connection.dbapi_connection
    driver_connection.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
        _check_references(connection)
    finally:
        if connection.in_transaction():  # left by a read after the last migration
            connection.rollback()
        driver_connection.execute("PRAGMA foreign_keys = ON")


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=_engine().url,
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    with _engine().connect() as connection, _sqlite_foreign_keys_off(connection):
        _configure(connection)


if context.is_offline_mode():
    run_offline()
else:
    run_online()
