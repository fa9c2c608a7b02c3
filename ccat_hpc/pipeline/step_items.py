"""Claims and outcomes of the items a pipeline step works on (packages, transfer packages).

An item is claimed by one job batch when the batch is created (waiting state → working
state, the batch named on it); only that batch's tasks record its outcome or give it
back, so no item is worked on or recorded twice, even when a batch is forced closed
under a running task. Three endings:

- done: the working state → the next state, claim cleared, failure fields cleared;
- retryable failure: back to the waiting state with the reason (a rerun takes it);
- permanent failure: FAILED with the reason, until an operator re-queues it.

Every try of the step at hand counts in ``attempts`` (back to 0 when the item moves on
to the next step). Functions take a session and never commit.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, or_, select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataTransfer,
    DataTransferPackage,
    JobBatch,
    LongTermArchiveTransfer,
    RawDataPackage,
    Site,
)
from ccat_hpc.db.states import PackageState, TransferState
from ccat_hpc.db.transitions import in_chunks, move
from ccat_hpc.pipeline.retry import RetryPolicy

StepItem = type[RawDataPackage] | type[DataTransferPackage]


@dataclass(frozen=True)
class StepStates:
    """Where a step takes its items from, where they are while worked on, where they go."""

    waiting: PackageState
    working: PackageState
    done: PackageState


P = PackageState
#: every step whose items are packages: the model of its items and their states
STEP_ITEMS: dict[str, tuple[StepItem, StepStates]] = {
    "package": (RawDataPackage, StepStates(P.PLANNED, P.BUILDING, P.BUILT)),
    "bundle": (DataTransferPackage, StepStates(P.PLANNED, P.BUILDING, P.BUILT)),
    "transfer": (DataTransferPackage, StepStates(P.BUILT, P.TRANSFERRING, P.TRANSFERRED)),
    "archive": (DataTransferPackage, StepStates(P.TRANSFERRED, P.ARCHIVING, P.ARCHIVED)),
}


def held_by(model: StepItem, batch_id: int) -> list[ColumnElement[bool]]:
    return [model.claimed_by_batch_id == batch_id]


def claim(session: Session, model: StepItem, ids: Sequence[int], states: StepStates) -> list[int]:
    """Move the items still waiting to the working state; returns those it got.

    Then create the batch for them and name it on them (:func:`assign`), in the same
    transaction: a second submission at the same time finds none of them waiting.
    """
    return sorted(move(session, model, list(ids), states.waiting, states.working))


def assign(
    session: Session,
    model: StepItem,
    ids: Sequence[int],
    batch_id: int,
    uncounted: Collection[int] = (),
) -> None:
    """Name ``batch_id`` on claimed items and count the attempt (not for ``uncounted``
    ones: probes of an endpoint whose breaker is half-open)."""
    counted = [i for i in ids if i not in uncounted]
    free = [i for i in ids if i in uncounted]
    for group, tries in ((counted, model.attempts + 1), (free, model.attempts)):
        for chunk in in_chunks(group):
            session.execute(
                update(model)
                .where(model.id.in_(chunk))
                .values(claimed_by_batch_id=batch_id, attempts=tries)
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
    return _unclaim(
        session,
        model,
        item_id,
        states.working,
        states.done,
        batch_id,
        failure_reason=None,
        failure_retryable=None,
        retry_after=None,
        attempts=0,  # the next step counts its own tries
        **values,
    )


def _unclaim(
    session: Session,
    model: StepItem,
    item_id: int,
    working: PackageState,
    target: enum.StrEnum,
    batch_id: int,
    **values: Any,
) -> bool:
    """Move the item ``batch_id`` holds on to ``target``, its claim cleared; False when
    the batch no longer holds it (nothing written)."""
    moved = move(
        session,
        model,
        [item_id],
        working,
        target,
        only=held_by(model, batch_id),
        claimed_by_batch_id=None,
        **values,
    )
    return bool(moved)


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
    """Record a failure; False when ``batch_id`` no longer holds the item.

    Retryable: back to waiting, not before the backoff of the site's retry policy has
    passed (``retry_after``); after the step's last allowed try it waits for an operator
    instead (``failure_retryable`` False, its attempts named in the reason). Not
    retryable: FAILED, or with ``keep_waiting`` (the item is fine itself, something
    around it needs fixing) waiting for an operator.
    """
    policy, step = retry_policy(session, batch_id)
    attempts = int(session.scalar(select(model.attempts).where(model.id == item_id)) or 0)
    if retryable and attempts >= policy.attempts_for(step):
        retryable, keep_waiting = False, True
        reason = f"gave up after {attempts} tries (needs an operator): {reason}"
    retry_after = utcnow() + timedelta(seconds=policy.delay(attempts)) if retryable else None
    back = retryable or keep_waiting
    target: enum.StrEnum = states.waiting if back else PackageState.FAILED
    return _unclaim(
        session,
        model,
        item_id,
        states.working,
        target,
        batch_id,
        failure_reason=reason,
        failure_retryable=retryable,
        retry_after=retry_after,
    )


def postpone(
    session: Session,
    model: StepItem,
    item_id: int,
    states: StepStates,
    batch_id: int,
    reason: str,
) -> bool:
    """Back to waiting for a while, the try not counted: the item is fine and nothing
    failed, it waits for room (every buffer full). Tried again after the site's base
    backoff; False when ``batch_id`` no longer holds the item."""
    policy, _step = retry_policy(session, batch_id)
    return _unclaim(
        session,
        model,
        item_id,
        states.working,
        states.waiting,
        batch_id,
        # the claim counted it (not for a probe: never below 0)
        attempts=case((model.attempts > 0, model.attempts - 1), else_=0),
        failure_reason=reason,
        failure_retryable=True,
        retry_after=utcnow() + timedelta(seconds=policy.base_seconds),
    )


def retry_policy(session: Session, batch_id: int) -> tuple[RetryPolicy, str]:
    """The retry policy of the batch's site (the defaults without one), and its step."""
    kind, site_name = session.execute(
        select(JobBatch.kind, JobBatch.site_name).where(JobBatch.id == batch_id)
    ).one()
    settings: dict[str, Any] = {}
    if site_name is not None:
        settings = session.scalar(select(Site.settings).where(Site.name == site_name)) or {}
    return RetryPolicy.from_settings(settings.get("pipeline", {})), str(kind)


def ready_now(model: StepItem) -> ColumnElement[bool]:
    """Not waiting out a backoff, and not waiting for an operator."""
    return and_(
        or_(model.retry_after.is_(None), model.retry_after <= utcnow()),
        or_(model.failure_retryable.is_(None), model.failure_retryable.is_(True)),
    )


def retry_now(session: Session, model: StepItem, states: StepStates) -> int:
    """An operator's "try again now": waiting items lose their backoff and their
    needs-an-operator mark (their attempts start again from zero); how many."""
    ids = list(
        session.scalars(
            select(model.id).where(
                model.state == states.waiting,
                or_(model.retry_after.is_not(None), model.failure_retryable.is_(False)),
            )
        )
    )
    for chunk in in_chunks(ids):
        session.execute(
            update(model)
            .where(model.id.in_(chunk))
            .values(retry_after=None, failure_retryable=None, attempts=0)
            .execution_options(synchronize_session=False)
        )
    return len(ids)


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
    """Attempts a dead task left RUNNING (or VERIFYING) are FAILED with ``reason``.

    Their ``failure_retryable`` stays None: the task died, which says nothing about the
    endpoint, so these failures do not count towards its circuit breaker.
    """
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
        failure_retryable=None,
    )
