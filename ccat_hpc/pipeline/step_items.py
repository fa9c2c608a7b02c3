"""Claims and outcomes of the items a pipeline step works on (packages, transfer packages).

An item is claimed by one job batch when the batch is created (waiting state → working
state, the batch named on it); only that batch's tasks record its outcome or give it
back, so no item is worked on or recorded twice, even when a batch is forced closed
under a running task. Three endings:

- done: the working state → the next state, claim cleared, failure fields cleared;
- retryable failure: back to the waiting state with the reason (a rerun takes it);
- permanent failure: FAILED with the reason, until an operator re-queues it.

Every try counts in ``attempts``. Functions take a session and never commit.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataTransfer,
    DataTransferPackage,
    LongTermArchiveTransfer,
    RawDataPackage,
)
from ccat_hpc.db.states import PackageState, TransferState
from ccat_hpc.db.transitions import move

StepItem = type[RawDataPackage] | type[DataTransferPackage]


@dataclass(frozen=True)
class StepStates:
    """Where a step takes its items from, where they are while worked on, where they go."""

    waiting: PackageState
    working: PackageState
    done: PackageState


def held_by(model: StepItem, batch_id: int) -> list[ColumnElement[bool]]:
    return [model.claimed_by_batch_id == batch_id]


def claim(session: Session, model: StepItem, ids: Sequence[int], states: StepStates) -> list[int]:
    """Move the items still waiting to the working state; returns those it got.

    Then create the batch for them and name it on them (:func:`assign`), in the same
    transaction: a second submission at the same time finds none of them waiting.
    """
    return sorted(move(session, model, list(ids), states.waiting, states.working))


def assign(session: Session, model: StepItem, ids: Sequence[int], batch_id: int) -> None:
    """Name ``batch_id`` on claimed items and count the attempt."""
    for start in range(0, len(ids), 5000):
        session.execute(
            update(model)
            .where(model.id.in_(ids[start : start + 5000]))
            .values(claimed_by_batch_id=batch_id, attempts=model.attempts + 1)
            .execution_options(synchronize_session=False)
        )


def release(
    session: Session, model: StepItem, ids: Sequence[Any], states: StepStates, batch_id: int
) -> int:
    """Give back items ``batch_id`` holds (its task ended without their outcome)."""
    return len(
        move(
            session,
            model,
            list(ids),
            states.working,
            states.waiting,
            only=held_by(model, batch_id),
            claimed_by_batch_id=None,
        )
    )


def finish(
    session: Session,
    model: StepItem,
    item_id: int,
    states: StepStates,
    batch_id: int,
    **values: Any,
) -> bool:
    """Record the item done; False when ``batch_id`` no longer holds it (nothing written)."""
    return bool(
        move(
            session,
            model,
            [item_id],
            states.working,
            states.done,
            only=held_by(model, batch_id),
            claimed_by_batch_id=None,
            failure_reason=None,
            failure_retryable=None,
            **values,
        )
    )


def fail(
    session: Session,
    model: StepItem,
    item_id: int,
    states: StepStates,
    batch_id: int,
    reason: str,
    *,
    retryable: bool,
    keep_waiting: bool = False,
) -> bool:
    """Record a failure: back to waiting (retryable, or ``keep_waiting``: an item that is
    fine itself but cannot go on until an operator fixes something) or FAILED; False
    when not held."""
    back = retryable or keep_waiting
    target: enum.StrEnum = states.waiting if back else PackageState.FAILED
    return bool(
        move(
            session,
            model,
            [item_id],
            states.working,
            target,
            only=held_by(model, batch_id),
            claimed_by_batch_id=None,
            failure_reason=reason,
            failure_retryable=retryable,
        )
    )


def holds(
    session: Session, model: StepItem, item_id: int, states: StepStates, batch_id: int
) -> bool:
    """Whether ``batch_id`` still holds the item in its working state."""
    found = session.scalar(
        select(model.id).where(
            model.id == item_id, model.state == states.working, *held_by(model, batch_id)
        )
    )
    return found is not None


def start_attempt(session: Session, row: DataTransfer | LongTermArchiveTransfer) -> int:
    """Insert a new transfer row (PENDING) and mark it RUNNING from now; its id.

    Created in its first state and moved on like any other, so the state machine and
    its history hold for every attempt.
    """
    session.add(row)
    session.flush()
    model = type(row)
    move(session, model, [row.id], TransferState.PENDING, TransferState.SUBMITTED)
    move(
        session,
        model,
        [row.id],
        TransferState.SUBMITTED,
        TransferState.RUNNING,
        started_at=utcnow(),
        attempts=1,
    )
    return int(row.id)


def fail_unfinished_attempts(
    session: Session,
    model: type[DataTransfer] | type[LongTermArchiveTransfer],
    condition: ColumnElement[bool],
    reason: str,
) -> None:
    """Attempts a dead task left RUNNING (or VERIFYING) are FAILED with ``reason``."""
    unfinished = (TransferState.RUNNING, TransferState.VERIFYING)
    running = list(session.scalars(select(model.id).where(condition, model.state.in_(unfinished))))
    move(
        session,
        model,
        running,
        unfinished,
        TransferState.FAILED,
        finished_at=utcnow(),
        failure_reason=reason,
        failure_retryable=True,
    )
