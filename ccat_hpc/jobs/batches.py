"""Create job batches, submit them to an executor, track them to the end.

The tracker trusts ops-db for outcomes and asks the executor only about tasks that
have none: a task the executor says has ended while ops-db still has it PENDING or
RUNNING died without a word (killed, timed out, node lost), and is recorded FAILED
with the executor's reason. States are read from the executor *before* ops-db, so a
task that recorded its outcome and then exited is never misjudged.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import JobBatch, JobTask
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState
from ccat_hpc.db.transitions import move_row
from ccat_hpc.errors import CcatHpcError, NotFoundError
from ccat_hpc.executors.base import (
    RETRYABLE_STATUSES,
    ArrayJob,
    Executor,
    SubmittedArray,
    TaskReport,
    TaskStatus,
)
from ccat_hpc.executors.process import ExecutorError
from ccat_hpc.executors.validate import check_job_request
from ccat_hpc.jobs.kinds import job_kind, release_items
from ccat_hpc.sites.schema import SlurmProfile

OPEN_TASK_STATES = (JobTaskState.PENDING, JobTaskState.RUNNING)


def profile_for(profiles: Mapping[str, Any], kind: str) -> SlurmProfile:
    """The site's profile for ``kind``, else its ``default`` one, else Slurm defaults."""
    data = profiles.get(kind, profiles.get("default"))
    return SlurmProfile.model_validate(data) if data else SlurmProfile()


def create_batch(
    session: Session,
    kind: str,
    items_per_task: Sequence[Sequence[Any]],
    *,
    executor: str,
    profile: SlurmProfile,
    working_dir: Path,
    parameters: Mapping[str, Any] | None = None,
    site_name: str | None = None,
) -> JobBatch:
    """A PENDING batch with one task per entry of ``items_per_task`` (caller commits).

    The kind and its parameters are checked here, before anything runs (InvalidJob).
    """
    check_job_request(kind, len(items_per_task), working_dir, profile)
    job_kind(kind).check_parameters(dict(parameters or {}))
    batch = JobBatch(
        kind=kind,
        executor=executor,
        task_count=len(items_per_task),
        profile=profile.model_dump(mode="json"),
        parameters=dict(parameters or {}),
        working_dir=str(working_dir),
        site_name=site_name,
        external_ids=[],
    )
    batch.tasks = [
        JobTask(task_index=i, items=list(items)) for i, items in enumerate(items_per_task)
    ]
    session.add(batch)
    session.flush()
    return batch


def submit_batch(
    factory: sessionmaker[Session],
    batch_id: int,
    executor: Executor,
    environment: Mapping[str, str],
    depends_on: Sequence[SubmittedArray] = (),
    throttle: int | None = None,
) -> list[SubmittedArray]:
    """Submit a PENDING batch; record its job ids, or SUBMIT_FAILED with the reason.

    Whatever stops the submission (the executor refusing, a folder it cannot write, a
    value it does not take), the batch is marked SUBMIT_FAILED and its claimed items
    are given back before the error goes on to the caller.
    """
    try:
        with transaction(factory) as session:
            job = _array_job(_batch(session, batch_id), environment, depends_on, throttle)
        arrays = executor.submit(job)
    except Exception as exc:
        _submit_failed(factory, batch_id, exc)
        raise
    with transaction(factory) as session:
        move_row(
            session,
            _batch(session, batch_id),
            JobBatchState.SUBMITTED,
            submitted_at=utcnow(),
            external_ids=[a.to_json() for a in arrays],
        )
    return arrays


def _array_job(
    batch: JobBatch,
    environment: Mapping[str, str],
    depends_on: Sequence[SubmittedArray],
    throttle: int | None,
) -> ArrayJob:
    return ArrayJob(
        kind=batch.kind,
        batch_id=batch.id,
        task_count=batch.task_count,
        working_dir=Path(batch.working_dir),
        profile=SlurmProfile.model_validate(batch.profile),
        throttle=throttle,
        depends_on=tuple(depends_on),
        environment=dict(environment),
    )


def _submit_failed(factory: sessionmaker[Session], batch_id: int, exc: Exception) -> None:
    reason = str(exc) if isinstance(exc, CcatHpcError) else f"{type(exc).__name__}: {exc}"
    with transaction(factory) as session:
        batch = _batch(session, batch_id)
        if move_row(session, batch, JobBatchState.SUBMIT_FAILED, failure_reason=reason):
            for task in batch.tasks:
                release_items(session, batch.kind, task.items)


def create_and_submit(
    factory: sessionmaker[Session],
    executor: Executor,
    kind: str,
    items_per_task: Sequence[Sequence[Any]],
    *,
    working_dir: Path,
    environment: Mapping[str, str],
    profile: SlurmProfile,
    parameters: Mapping[str, Any] | None = None,
    site_name: str | None = None,
    throttle: int | None = None,
    depends_on: Sequence[SubmittedArray] = (),
) -> tuple[int, list[SubmittedArray]]:
    """Create a batch (committed) and submit it; returns its id and what was submitted."""
    check_job_request(kind, len(items_per_task), working_dir, profile, throttle)
    with transaction(factory) as session:
        batch = create_batch(
            session,
            kind,
            items_per_task,
            executor=executor.name,
            profile=profile,
            working_dir=working_dir,
            parameters=parameters,
            site_name=site_name,
        )
        batch_id = batch.id
    return batch_id, submit_batch(factory, batch_id, executor, environment, depends_on, throttle)


def arrays_of(batch: JobBatch) -> list[SubmittedArray]:
    return [SubmittedArray.from_json(data) for data in batch.external_ids]


def _batch(session: Session, batch_id: int) -> JobBatch:
    batch = session.get(JobBatch, batch_id)
    if batch is None:
        raise NotFoundError(f"no job batch {batch_id}")
    return batch


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


@dataclass(frozen=True)
class BatchSummary:
    batch_id: int
    state: JobBatchState
    tasks: dict[JobTaskState, int]

    @property
    def done(self) -> bool:
        return self.state in (JobBatchState.DONE, JobBatchState.CANCELLED)

    @property
    def all_succeeded(self) -> bool:
        return set(self.tasks) == {JobTaskState.SUCCEEDED}

    def counts_text(self) -> str:
        """``2 failed, 5 succeeded``."""
        return ", ".join(f"{n} {state.value}" for state, n in sorted(self.tasks.items()))


def track_batch(factory: sessionmaker[Session], batch_id: int, executor: Executor) -> BatchSummary:
    """Record tasks that ended silently; close the batch when every task has ended."""
    with transaction(factory) as session:
        arrays = arrays_of(_batch(session, batch_id))
    reports = executor.states(arrays) if arrays else {}
    with transaction(factory) as session:
        batch = _batch(session, batch_id)
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
        release_items(session, kind, task.items)


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
    poll_seconds: float = 1.0,
    timeout: float | None = None,
    on_poll: Callable[[BatchSummary], None] | None = None,
) -> BatchSummary:
    """Track until the batch is done (or ``timeout`` seconds passed)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        summary = track_batch(factory, batch_id, executor)
        if on_poll is not None:
            on_poll(summary)
        if summary.done or (deadline is not None and time.monotonic() > deadline):
            return summary
        time.sleep(poll_seconds)


def cancel_batch(factory: sessionmaker[Session], batch_id: int, executor: Executor) -> None:
    with transaction(factory) as session:
        arrays = arrays_of(_batch(session, batch_id))
    executor.cancel(arrays)


def tasks_of(session: Session, batch_id: int) -> list[JobTask]:
    return list(
        session.scalars(
            select(JobTask).where(JobTask.batch_id == batch_id).order_by(JobTask.task_index)
        )
    )


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
        )
        for b in batches
    ]


def track_unfinished(factory: sessionmaker[Session], kind: str, executor: Executor) -> int:
    """Track this executor's batches of ``kind`` that have not ended; returns how many.

    A task that died without a word gives back its claimed items only when its batch is
    tracked; doing this before claiming new work lets a rerun finish what a dead task
    left. A batch the executor no longer knows is left for `job status` to report.
    """
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
        with contextlib.suppress(ExecutorError):
            track_batch(factory, batch_id, executor)
            tracked += 1
    return tracked
