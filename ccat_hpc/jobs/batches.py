"""Create job batches, submit them to an executor, track them to the end.

The tracker trusts ops-db for outcomes and asks the executor only about tasks that
have none: a task the executor says has ended while ops-db still has it PENDING or
RUNNING died without a word (killed, timed out, node lost), and is recorded FAILED
with the executor's reason. States are read from the executor *before* ops-db, so a
task that recorded its outcome and then exited is never misjudged.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import JobBatch, JobTask
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState
from ccat_hpc.errors import NotFoundError
from ccat_hpc.executors.base import (
    RETRYABLE_STATUSES,
    ArrayJob,
    Executor,
    SubmittedArray,
    TaskReport,
    TaskStatus,
)
from ccat_hpc.executors.process import ExecutorError
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
    """A PENDING batch with one task per entry of ``items_per_task`` (caller commits)."""
    if not items_per_task:
        raise ValueError("a batch needs at least one task")
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
    """Submit a PENDING batch; record its job ids, or SUBMIT_FAILED with the reason."""
    with transaction(factory) as session:
        batch = _batch(session, batch_id)
        job = ArrayJob(
            kind=batch.kind,
            batch_id=batch.id,
            task_count=batch.task_count,
            working_dir=Path(batch.working_dir),
            profile=SlurmProfile.model_validate(batch.profile),
            throttle=throttle,
            depends_on=tuple(depends_on),
            environment=dict(environment),
        )
    try:
        arrays = executor.submit(job)
    except ExecutorError as exc:
        with transaction(factory) as session:
            batch = _batch(session, batch_id)
            batch.state, batch.failure_reason = JobBatchState.SUBMIT_FAILED, str(exc)
        raise
    with transaction(factory) as session:
        batch = _batch(session, batch_id)
        batch.state = JobBatchState.SUBMITTED
        batch.submitted_at = utcnow()
        batch.external_ids = [a.to_json() for a in arrays]
    return arrays


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
    tasks: dict[str, int]

    @property
    def done(self) -> bool:
        return self.state in (JobBatchState.DONE, JobBatchState.CANCELLED)


def track_batch(factory: sessionmaker[Session], batch_id: int, executor: Executor) -> BatchSummary:
    """Record tasks that ended silently; close the batch when every task has ended."""
    with transaction(factory) as session:
        arrays = arrays_of(_batch(session, batch_id))
    reports = executor.states(arrays) if arrays else {}
    with transaction(factory) as session:
        batch = _batch(session, batch_id)
        for task in batch.tasks:
            decision = silent_end(
                task, reports.get(task.task_index, TaskReport(TaskStatus.UNKNOWN))
            )
            if decision is not None:
                report = reports[task.task_index]
                task.state, task.reason, task.retryable = decision
                task.executor_state, task.exit_code = report.status.value, report.exit_code
                task.finished_at = utcnow()
        counts = Counter(task.state.value for task in batch.tasks)
        if batch.state == JobBatchState.SUBMITTED and not any(
            task.state in OPEN_TASK_STATES for task in batch.tasks
        ):
            batch.state, batch.finished_at = JobBatchState.DONE, utcnow()
        return BatchSummary(batch.id, batch.state, dict(counts))


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
