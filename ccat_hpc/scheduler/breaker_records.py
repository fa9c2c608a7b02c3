"""Circuit breakers in ops-db: the scheduler's changes, and an operator's list and reset.

Each change is a guarded state move (:func:`ccat_hpc.db.transitions.move`), so two
schedulers deciding the same change write it once; every change leaves a SystemLog row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ccat_hpc.db.models import CircuitBreaker, SystemLog
from ccat_hpc.db.states import BreakerState, LogLevel
from ccat_hpc.db.transitions import move
from ccat_hpc.errors import NotFoundError
from ccat_hpc.scheduler.breakers import BreakerChange

B = BreakerState
SOURCE = "breaker"


def _row(session: Session, change: BreakerChange) -> CircuitBreaker | None:
    key = change.endpoint
    return session.scalars(
        select(CircuitBreaker).filter_by(scope=key.scope, target_id=key.target_id)
    ).one_or_none()


def _created(session: Session, change: BreakerChange) -> CircuitBreaker | None:
    """The endpoint's row, created CLOSED (its first state) if it has none yet."""
    row = _row(session, change)
    if row is not None:
        return row
    key = change.endpoint
    try:
        with session.begin_nested():
            session.add(
                CircuitBreaker(
                    scope=key.scope, target_id=key.target_id, name=change.name, failures=0
                )
            )
    except IntegrityError:  # another scheduler created it at the same moment
        pass
    return _row(session, change)


def _values(change: BreakerChange, now: datetime) -> dict[str, Any]:
    if change.new is B.OPEN:
        return {
            "opened_at": now,
            "half_opened_at": None,
            "failures": change.failures,
            "reason": change.reason,
        }
    if change.new is B.HALF_OPEN:
        return {"half_opened_at": now}
    return {"closed_at": now, "failures": 0}


def apply_change(session: Session, change: BreakerChange, now: datetime) -> bool:
    """Write ``change`` if the breaker is still where the plan saw it; whether it was."""
    row = _created(session, change)
    if row is None:
        return False
    moved = move(session, CircuitBreaker, [row.id], change.old, change.new, **_values(change, now))
    if moved:
        level = LogLevel.WARNING if change.new is B.OPEN else LogLevel.INFO
        session.add(
            SystemLog(
                level=level,
                source=SOURCE,
                message=change.describe(),
                details={"scope": change.endpoint.scope, "name": change.name},
            )
        )
    return bool(moved)


def all_breakers(session: Session) -> list[CircuitBreaker]:
    return list(session.scalars(select(CircuitBreaker).order_by(CircuitBreaker.name)))


def reset(session: Session, names: Sequence[str], now: datetime, *, who: str) -> list[str]:
    """Close the named breakers (all open or half-open ones when ``names`` is empty); the
    names closed. NotFoundError for a name no breaker has."""
    rows = all_breakers(session)
    if names:
        known = {row.name for row in rows}
        unknown = sorted(set(names) - known)
        if unknown:
            names_known = ", ".join(sorted(known)) or "none"
            raise NotFoundError(f"no breaker named {', '.join(unknown)} (known: {names_known})")
        rows = [row for row in rows if row.name in names]
    closed: list[str] = []
    for row in rows:
        if row.state is B.CLOSED:
            continue
        if move(session, CircuitBreaker, [row.id], row.state, B.CLOSED, closed_at=now, failures=0):
            closed.append(row.name)
            session.add(
                SystemLog(
                    level=LogLevel.INFO,
                    source=SOURCE,
                    message=f"breaker of {row.scope} {row.name} reset by {who}",
                    details={"scope": row.scope, "name": row.name},
                )
            )
    return closed
