"""Fast bulk inserts of many rows whose ids the caller needs (filing 100,000 files).

RETURNING with many rows makes SQLAlchemy build one huge multi-VALUES statement per
1,000 rows, which psycopg re-parses in Python every time. Instead the ids are taken
up front (a block of the table's sequence on PostgreSQL; ``max(id)+1…`` on SQLite,
where every ops-db transaction holds the write lock from its start, see
:mod:`ccat_hpc.db.session`) and the rows go in with a plain executemany, which
PostgreSQL loads with COPY and sqlite3 runs as one prepared statement.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import JSON, Table, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ccat_hpc.db.base import Base


def table_of(model: type[Base]) -> Table:
    """The model's own table (for joined inheritance: the subclass's table)."""
    return cast(Table, model.__table__)


def allocate_ids(session: Session, model: type[Base], count: int) -> list[int]:
    """``count`` fresh primary keys for ``model``'s table, valid in the caller's transaction."""
    table = table_of(model)
    if count == 0:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        query = text(
            "SELECT array_agg(nextval(pg_get_serial_sequence(:table, 'id'))) "
            "FROM generate_series(1, :n)"
        )
        return list(session.scalar(query, {"table": table.name, "n": count}))
    if dialect == "sqlite":
        highest = session.scalar(select(func.coalesce(func.max(table.c.id), 0)))
        start = int(highest or 0) + 1
        return list(range(start, start + count))
    raise NotImplementedError(f"id allocation is not implemented for {dialect}")


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) into ``model``'s table.

    PostgreSQL: one ``COPY … FROM STDIN`` (the server's bulk path); elsewhere one
    executemany. Values must be complete: no column defaults are applied by COPY.
    """
    if not rows:
        return
    table = table_of(model)
    if session.get_bind().dialect.name == "postgresql":
        _copy_rows(session, table, rows)
    else:
        session.execute(table.insert(), list(rows))


def _copy_converter(column_type: Any, sample: Any) -> Callable[[Any], Any] | None:
    """How to hand one column's Python values to COPY (None: as they are)."""
    from psycopg.types.json import Jsonb  # only PostgreSQL gets here

    if isinstance(column_type, JSON):
        return lambda value: None if value is None else Jsonb(value)
    if isinstance(sample, enum.Enum):
        return lambda value: value.value if isinstance(value, enum.Enum) else value
    return None


def _copy_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY through the driver; its errors are raised as SQLAlchemy's, like any statement's."""
    import psycopg

    statement = f'COPY "{table.name}"'
    try:
        _copy_with_driver(session, table, rows)
    except psycopg.IntegrityError as exc:
        raise IntegrityError(statement, None, exc) from exc
    except psycopg.OperationalError as exc:
        raise OperationalError(statement, None, exc) from exc


def _copy_with_driver(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0])
    converters = [_copy_converter(table.c[name].type, rows[0][name]) for name in columns]
    plain = all(converter is None for converter in converters)
    column_list = ", ".join(f'"{name}"' for name in columns)
    dbapi_connection = session.connection().connection.driver_connection
    assert dbapi_connection is not None
    with (
        dbapi_connection.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({column_list}) FROM STDIN') as copy,
    ):
        for row in rows:
            values = [row[name] for name in columns]
            if not plain:
                values = [v if c is None else c(v) for v, c in zip(values, converters, strict=True)]
            copy.write_row(values)


def lock_key(key: uuid.UUID) -> int:
    """A signed 64-bit advisory-lock key from a UUID (pure)."""
    value = key.int >> 64
    return value - (1 << 64) if value >= 1 << 63 else value


def lock_for_transaction(session: Session, key: uuid.UUID) -> None:
    """Serialise transactions working on the same ``key`` until the caller's transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite needs none: every ops-db
    transaction there holds the database's write lock from its start.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(key)})
