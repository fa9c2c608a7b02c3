"""The one way a state changes: a guarded UPDATE that says which rows moved.

``UPDATE … SET state = new WHERE id IN (…) AND state IN (expected) RETURNING id``
moves only rows that are still where the caller saw them, on PostgreSQL and on
SQLite alike. The caller learns which rows moved, so a claim is exact: of two
workers claiming the same rows, each row goes to one of them (on PostgreSQL the
second UPDATE waits for the first transaction and then re-checks the state; SQLite
runs one writer at a time). Every edge is checked against the state machine in
:mod:`ccat_hpc.db.states` first: asking for a forbidden move is a bug, raised as
:class:`InvalidStateTransition` before anything is written.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from ccat_hpc.db.base import Base
from ccat_hpc.db.states import check_transition

#: ids per statement (SQLite allows 32,766 bound parameters)
CHUNK = 5000
T = TypeVar("T")


def in_chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size`` (one ``IN (…)`` statement each)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _expected_states(expected: enum.StrEnum | Iterable[enum.StrEnum]) -> list[enum.StrEnum]:
    return [expected] if isinstance(expected, enum.StrEnum) else list(expected)


def move(
    session: Session,
    model: type[Base],
    ids: Sequence[Any],
    expected: enum.StrEnum | Iterable[enum.StrEnum],
    new: enum.StrEnum,
    *,
    only: Sequence[ColumnElement[bool]] = (),
    **values: Any,
) -> list[Any]:
    """Move the rows of ``ids`` that are in an ``expected`` state to ``new``; return their ids.

    ``only`` adds conditions a row must meet too (e.g. who holds its claim). ``values``
    are set on the moved rows (the same for all). Objects of these rows loaded in
    ``session`` see the new values. The caller owns the transaction.
    """
    states = _expected_states(expected)
    for state in states:
        check_transition(state, new)
    table_id, state_column = model.id, model.state  # type: ignore[attr-defined]
    moved: list[Any] = []
    for chunk in in_chunks(ids):
        statement = (
            update(model)
            .where(table_id.in_(chunk), state_column.in_(states), *only)
            .values(state=new, **values)
            .returning(table_id)
            .execution_options(synchronize_session="fetch")
        )
        moved.extend(session.scalars(statement))
    return moved


def move_row(session: Session, row: Any, new: enum.StrEnum, **values: Any) -> bool:
    """Move one loaded row from the state it was read in to ``new``; False if it had moved on.

    When another transaction changed the row first, nothing is written and ``row`` is
    refreshed, so the caller sees who got there first.
    """
    moved = move(session, type(row), [row.id], row.state, new, **values)
    if not moved:
        session.refresh(row)
    return bool(moved)
