"""Following job batches to the end: what the executor says, recorded in ops-db.

The tracker trusts ops-db for outcomes and asks the executor only about tasks that
have none: a task the executor says has ended while ops-db still has it PENDING or
RUNNING died without a word (killed, timed out, node lost), and is recorded FAILED
(or CANCELLED) with the executor's reason; its claimed work items are given back.
States are read from the executor *before* ops-db, so a task that recorded its
outcome and then exited is never misjudged. Batches are only followed when someone
tracks them (`job status`, `job wait`, `job list`, the next `checksum`, and later the
scheduler loop).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import JobBatch, JobTask
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState
from ccat_hpc.db.transitions import move_row
from ccat_hpc.executors.base import RETRYABLE_STATUSES, Executor, TaskReport, TaskStatus
from ccat_hpc.executors.process import ExecutorError, UnknownJob
from ccat_hpc.jobs.batches import (
    OPEN_TASK_STATES,
    abandon_unsubmitted,
    arrays_of,
    get_batch,
)
from ccat_hpc.jobs.kinds import release_items

#: a PENDING batch this old was never submitted: its submitter stopped (killed, crashed)
ABANDONED_AFTER = timedelta(minutes=10)


def silent_end(task: JobTask, report: TaskReport) -> tuple[JobTaskState, str, bool] | None:
    """What to record for a task the executor says ended without its outcome (pure)."""
    if task.state not in OPEN_TASK_STATES or not report.final:
        return None
    if report.status == TaskStatus.CANCELLED:
        return JobTaskState.CANCELLED, _reason(report, "cancelled"), False
    if report.status == TaskStatus.COMPLETED:
        return JobTaskState.FAILED, "exited 0 without recording an outcome", True
    retryable = report.status in RETRYABLE_STATUSES or report.status == TaskStatus.TIMEOUT
    return JobTaskState.FAILED, _reason(report, "ended without recording an outcome"), retryable


def _reason(report: TaskReport, default: str) -> str:
    detail = f" ({report.reason})" if report.reason else ""
    code = f", exit code {report.exit_code}" if report.exit_code is not None else ""
    return f"{report.status.value}{detail}{code}: {default}"


#: the first pause between polls of a batch just submitted (it grows from there)
FIRST_POLL = 0.1


@dataclass(frozen=True)
class BatchSummary:
    batch_id: int
    state: JobBatchState
    tasks: dict[JobTaskState, int]

    @property
    def done(self) -> bool:
        """Nothing more will happen: done, never submitted, or cancelled and every task ended."""
        if self.state == JobBatchState.CANCELLED:
            return not any(state in OPEN_TASK_STATES for state in self.tasks)
        return self.state in (JobBatchState.DONE, JobBatchState.SUBMIT_FAILED)

    @property
    def all_succeeded(self) -> bool:
        return set(self.tasks) == {JobTaskState.SUCCEEDED}

    def counts_text(self) -> str:
        """``2 failed, 5 succeeded``."""
        return ", ".join(f"{n} {state.value}" for state, n in sorted(self.tasks.items()))


def track_batch(factory: sessionmaker[Session], batch_id: int, executor: Executor) -> BatchSummary:
    """Record tasks that ended silently; close the batch when every task has ended."""
    with transaction(factory) as session:
        arrays = arrays_of(get_batch(session, batch_id))
    reports = executor.states(arrays) if arrays else {}
    with transaction(factory) as session:
        batch = get_batch(session, batch_id)
        for task in batch.tasks:
            report = reports.get(task.task_index, TaskReport(TaskStatus.UNKNOWN))
            _record_silent_end(session, batch.kind, task, report)
        _advance_batch(session, batch)
        counts = Counter(task.state for task in batch.tasks)
        return BatchSummary(batch.id, batch.state, dict(counts))


def _record_silent_end(session: Session, kind: str, task: JobTask, report: TaskReport) -> None:
    """Record a task the executor says ended without its outcome; give back its items."""
    decision = silent_end(task, report)
    if decision is None:
        return
    state, reason, retryable = decision
    if move_row(
        session,
        task,
        state,
        reason=reason,
        retryable=retryable,
        finished_at=utcnow(),
        executor_state=report.status.value,
        exit_code=report.exit_code,
    ):
        release_items(session, kind, task.items, task.batch_id)


def _advance_batch(session: Session, batch: JobBatch) -> None:
    """RUNNING once a task has started or ended; DONE once every task has ended."""
    if batch.state not in (JobBatchState.SUBMITTED, JobBatchState.RUNNING):
        return
    states = [task.state for task in batch.tasks]
    if not any(state in OPEN_TASK_STATES for state in states):
        move_row(session, batch, JobBatchState.DONE, finished_at=utcnow())
    elif batch.state == JobBatchState.SUBMITTED and any(
        state != JobTaskState.PENDING for state in states
    ):
        move_row(session, batch, JobBatchState.RUNNING)


def wait_for_batch(
    factory: sessionmaker[Session],
    batch_id: int,
    executor: Executor,
    *,
    poll_seconds: float = 2.0,
    timeout: float | None = None,
    on_poll: Callable[[BatchSummary], None] | None = None,
) -> BatchSummary:
    """Track until the batch is done (or ``timeout`` seconds passed).

    Polls soon after the submission (short batches end in a second or two) and then
    less often, up to every ``poll_seconds``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = min(FIRST_POLL, poll_seconds)
    while True:
        summary = track_batch(factory, batch_id, executor)
        if on_poll is not None:
            on_poll(summary)
        if summary.done or (deadline is not None and time.monotonic() > deadline):
            return summary
        time.sleep(pause)
        pause = min(pause * 1.5, poll_seconds)


@dataclass(frozen=True)
class BatchListing:
    """One line of ``ccat-hpc job list``."""

    batch_id: int
    kind: str
    executor: str
    state: JobBatchState
    task_count: int
    created_at: datetime
    finished_at: datetime | None
    tasks: dict[JobTaskState, int]
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch_id,
            "kind": self.kind,
            "executor": self.executor,
            "state": self.state.value,
            "task_count": self.task_count,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "tasks": {state.value: n for state, n in self.tasks.items()},
            "reason": self.reason,
        }


def recent_batches(
    session: Session, limit: int = 20, states: Sequence[JobBatchState] = ()
) -> list[BatchListing]:
    """The newest batches (optionally in ``states``) with their tasks counted by state."""
    query = select(JobBatch).order_by(JobBatch.id.desc()).limit(limit)
    if states:
        query = query.where(JobBatch.state.in_(states))
    batches = list(session.scalars(query))
    counts: dict[int, dict[JobTaskState, int]] = {b.id: {} for b in batches}
    rows = session.execute(
        select(JobTask.batch_id, JobTask.state, func.count())
        .where(JobTask.batch_id.in_(list(counts)))
        .group_by(JobTask.batch_id, JobTask.state)
    )
    for batch_id, state, count in rows:
        counts[batch_id][state] = int(count)
    return [
        BatchListing(
            b.id,
            b.kind,
            b.executor,
            b.state,
            b.task_count,
            b.created_at,
            b.finished_at,
            counts[b.id],
            b.failure_reason,
        )
        for b in batches
    ]


def track_unfinished(factory: sessionmaker[Session], kind: str, executor: Executor) -> int:
    """Track this executor's batches of ``kind`` that have not ended; returns how many.

    A task that died without a word gives back its claimed items only when its batch is
    tracked; doing this before claiming new work lets a rerun finish what a dead task
    left. Batches never submitted for ``ABANDONED_AFTER`` give theirs back too. A batch
    the executor no longer knows is left for `job cancel --force`.
    """
    abandon_unsubmitted(factory, kind, utcnow() - ABANDONED_AFTER)
    with transaction(factory) as session:
        open_ids = list(
            session.scalars(
                select(JobBatch.id).where(
                    JobBatch.kind == kind,
                    JobBatch.executor == executor.name,
                    JobBatch.state.in_((JobBatchState.SUBMITTED, JobBatchState.RUNNING)),
                )
            )
        )
    tracked = 0
    for batch_id in open_ids:
        try:
            track_batch(factory, batch_id, executor)
        except UnknownJob:
            continue  # its state is gone: left for `job cancel --force`
        except ExecutorError:
            break  # the executor does not answer: asking about the others would wait as long
        tracked += 1
    return tracked
