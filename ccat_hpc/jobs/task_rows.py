"""A task's own rows in ops-db (job_task, job_batch), read and moved with plain SQL.

The job runner records every task's start and end with these statements, not with
the ORM, so that a task whose handler needs no ORM never imports it (see
:mod:`ccat_hpc.jobs.direct_db`). A move is the one of :func:`ccat_hpc.db.transitions.move`:
the edge is checked against the state machine first, and ``UPDATE … WHERE id = ? AND
state = ? RETURNING id`` moves the row only from the state the caller read (on
PostgreSQL a second writer waits for the first and then re-checks the state; SQLite
runs one writer at a time). Values are stored as the models store them: JSON as
SQLAlchemy's JSON type writes it (None as JSON null), timestamps as aware UTC (on
SQLite the text SQLAlchemy writes), enums as their values.

:class:`TaskStore` gives one transaction at a time: on a direct connection when there
is one, else (and whenever items are given back in the same transaction, which takes
the ORM) on the connection under an ORM session. The statements are the same.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ccat_hpc.db.states import JobBatchState, JobTaskState, check_transition
from ccat_hpc.jobs.direct_db import DirectDb, Row
from ccat_hpc.pipeline.tasks import Sessions, session_factory

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

JOB_TASK = "job_task"
JOB_BATCH = "job_batch"
#: the columns a move may set besides the state
WRITABLE = {
    JOB_TASK: frozenset(
        {"attempts", "started_at", "finished_at", "host", "external_id"}
        | {"result", "reason", "retryable", "exit_code"}
    ),
    JOB_BATCH: frozenset(),
}
JSON_COLUMNS = frozenset({"result", "items", "parameters"})
TIME_COLUMNS = frozenset({"started_at", "finished_at"})

#: runs one statement written with the driver's placeholders; its rows
Execute = Callable[[str, Sequence[Any]], list[Row]]


@dataclass(frozen=True)
class BatchRow:
    kind: str
    state: JobBatchState
    parameters: dict[str, Any]
    executor: str = ""


@dataclass(frozen=True)
class TaskRow:
    id: int
    batch_id: int
    task_index: int
    state: JobTaskState
    external_id: str | None
    attempts: int
    items: list[Any]


class TaskRows:
    """The statements on a task's rows, on one DB-API connection of ``dialect``."""

    def __init__(self, execute: Execute, dialect: str) -> None:
        self._execute = execute
        self.dialect = dialect

    def _run(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """Run ``sql`` written with ``?`` placeholders (psycopg's are ``%s``)."""
        return self._execute(sql if self.dialect == "sqlite" else sql.replace("?", "%s"), params)

    def batch(self, batch_id: int) -> BatchRow | None:
        rows = self._run(
            "SELECT kind, state, parameters, executor FROM job_batch WHERE id = ?", [batch_id]
        )
        if not rows:
            return None
        kind, state, parameters, executor = rows[0]
        return BatchRow(kind, JobBatchState(state), self._load(parameters), executor)

    def task(self, batch_id: int, task_index: int) -> TaskRow | None:
        rows = self._run(
            "SELECT id, state, external_id, attempts, items FROM job_task"
            " WHERE batch_id = ? AND task_index = ?",
            [batch_id, task_index],
        )
        if not rows:
            return None
        row_id, state, external_id, attempts, items = rows[0]
        return TaskRow(
            row_id,
            batch_id,
            task_index,
            JobTaskState(state),
            external_id,
            attempts,
            self._load(items),
        )

    def move(
        self, table: str, row_id: int, expected: enum.StrEnum, new: enum.StrEnum, **values: Any
    ) -> bool:
        """Move the row from ``expected`` to ``new``, setting ``values``; False if it had
        moved on (nothing written). A forbidden edge raises before anything is written."""
        check_transition(expected, new)
        unknown = set(values) - WRITABLE[table]
        if unknown:
            raise ValueError(f"{table} has no writable column {', '.join(sorted(unknown))}")
        assignments = "".join(f", {column} = ?" for column in values)
        params = [new.value, *(self._bind(c, v) for c, v in values.items()), row_id, expected.value]
        sql = f"UPDATE {table} SET state = ?{assignments} WHERE id = ? AND state = ? RETURNING id"
        return bool(self._run(sql, params))

    def _load(self, value: Any) -> Any:
        """A JSON column's value (SQLite returns its text; psycopg decodes it)."""
        return json.loads(value) if self.dialect == "sqlite" and value is not None else value

    def _bind(self, column: str, value: Any) -> Any:
        if column in JSON_COLUMNS:
            return self._json(value)
        if column in TIME_COLUMNS and value is not None:
            return self._time(value)
        return value

    def _json(self, value: Any) -> Any:
        if self.dialect == "sqlite":
            return json.dumps(value)
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def _time(self, value: datetime) -> Any:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: ops-db stores aware UTC times only")
        utc = value.astimezone(UTC)
        if self.dialect == "sqlite":  # as SQLAlchemy's DateTime stores it on SQLite
            return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return utc


class TaskStore:
    """Where a task records itself: ops-db's sessions (made on first use when lazy) and,
    when one could be opened, a direct connection."""

    def __init__(self, sessions: Sessions, direct: DirectDb | None = None) -> None:
        self.sessions = sessions
        self.direct = direct

    @property
    def operational_errors(self) -> tuple[type[Exception], ...]:
        """The direct driver's errors of an ops-db that cannot be used (none without one)."""
        return () if self.direct is None else self.direct.operational_errors

    @contextmanager
    def rows(self) -> Iterator[TaskRows]:
        """One transaction on the task's rows, on the direct connection if there is one."""
        if self.direct is None:
            with self.with_session() as (rows, _session):
                yield rows
            return
        with self.direct.transaction() as direct:
            yield TaskRows(direct.execute, direct.dialect)

    @contextmanager
    def with_session(self) -> Iterator[tuple[TaskRows, Session]]:
        """One transaction of an ORM session, the task's rows read on its connection."""
        from ccat_hpc.db.session import transaction

        with transaction(session_factory(self.sessions)) as session:
            connection = session.connection()

            def execute(sql: str, params: Sequence[Any]) -> list[Row]:
                result = connection.exec_driver_sql(sql, tuple(params))
                return list(result) if result.returns_rows else []

            yield TaskRows(execute, connection.dialect.name), session

    def close(self) -> None:
        if self.direct is not None:
            self.direct.close()
