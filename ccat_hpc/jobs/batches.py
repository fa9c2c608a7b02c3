"""Job batches: create them (kind and parameters checked), submit them, cancel them.

A batch whose submission fails for any reason (refused by the executor, interrupted)
is SUBMIT_FAILED and gives its claimed work items back; following batches to the end
is :mod:`ccat_hpc.jobs.tracking`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import JobBatch, JobTask
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState
from ccat_hpc.db.transitions import move_row
from ccat_hpc.errors import CcatHpcError, NotFoundError
from ccat_hpc.executors.base import (
    ArrayJob,
    Executor,
    SubmittedArray,
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
            job = _array_job(get_batch(session, batch_id), environment, depends_on, throttle)
        arrays = executor.submit(job)
    except BaseException as exc:  # also an interrupted submission (Ctrl-C, SIGTERM)
        _submit_failed(factory, batch_id, _failure_text(exc))
        raise
    with transaction(factory) as session:
        move_row(
            session,
            get_batch(session, batch_id),
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


def _failure_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CcatHpcError) else f"{type(exc).__name__}: {exc}"


def _submit_failed(factory: sessionmaker[Session], batch_id: int, reason: str) -> None:
    """SUBMIT_FAILED with the reason; its tasks will not run (CANCELLED), their items back."""
    with transaction(factory) as session:
        batch = get_batch(session, batch_id)
        if not move_row(session, batch, JobBatchState.SUBMIT_FAILED, failure_reason=reason):
            return
        for task in batch.tasks:
            if task.state == JobTaskState.PENDING:
                move_row(session, task, JobTaskState.CANCELLED, reason="never submitted")
            release_items(session, batch.kind, task.items, batch.id)


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


def get_batch(session: Session, batch_id: int) -> JobBatch:
    batch = session.get(JobBatch, batch_id)
    if batch is None:
        raise NotFoundError(f"no job batch {batch_id}")
    return batch


def cancel_batch(
    factory: sessionmaker[Session], batch_id: int, executor: Executor, *, force: bool = False
) -> JobBatchState:
    """Cancel a batch: never submitted ones at once; submitted ones through the executor.

    The tracker records each task's end as the executor reports it. With ``force``, or
    when the executor no longer knows the batch (its state was lost), the open tasks are
    recorded CANCELLED here and their claimed items given back: an operator's way out
    for a batch nothing can follow any more.
    """
    with transaction(factory) as session:
        batch = get_batch(session, batch_id)
        state, arrays = batch.state, arrays_of(batch)
    if state == JobBatchState.PENDING:
        _close_without_executor(factory, batch_id, "cancelled before it was submitted")
    elif state in (JobBatchState.SUBMITTED, JobBatchState.RUNNING) or force:
        _cancel_submitted(factory, batch_id, executor, arrays, force)
    with transaction(factory) as session:
        return get_batch(session, batch_id).state


def _cancel_submitted(
    factory: sessionmaker[Session],
    batch_id: int,
    executor: Executor,
    arrays: Sequence[SubmittedArray],
    force: bool,
) -> None:
    try:
        executor.cancel(arrays)
    except ExecutorError as exc:
        if not force:
            raise
        _close_without_executor(factory, batch_id, f"forced: the executor said: {exc}")
        return
    with transaction(factory) as session:
        batch = get_batch(session, batch_id)
        if batch.state in (JobBatchState.SUBMITTED, JobBatchState.RUNNING):
            move_row(session, batch, JobBatchState.CANCELLED, finished_at=utcnow())
    if force:
        _close_without_executor(factory, batch_id, "forced by an operator")


def _close_without_executor(factory: sessionmaker[Session], batch_id: int, why: str) -> None:
    """Record the batch and its open tasks CANCELLED and give back their items."""
    reason = f"cancelled by an operator ({why})"
    with transaction(factory) as session:
        batch = get_batch(session, batch_id)
        for task in batch.tasks:
            if task.state in OPEN_TASK_STATES and move_row(
                session, task, JobTaskState.CANCELLED, reason=reason, finished_at=utcnow()
            ):
                release_items(session, batch.kind, task.items, batch.id)
        if batch.state in (JobBatchState.PENDING, JobBatchState.SUBMITTED, JobBatchState.RUNNING):
            move_row(
                session, batch, JobBatchState.CANCELLED, finished_at=utcnow(), failure_reason=reason
            )


def abandon_unsubmitted(factory: sessionmaker[Session], kind: str, before: datetime) -> int:
    """Batches of ``kind`` still PENDING since before ``before``: their submitter stopped
    between claiming and submitting. Marked SUBMIT_FAILED, their items given back."""
    with transaction(factory) as session:
        stale = list(
            session.scalars(
                select(JobBatch.id).where(
                    JobBatch.kind == kind,
                    JobBatch.state == JobBatchState.PENDING,
                    JobBatch.created_at < before,
                )
            )
        )
    for batch_id in stale:
        _submit_failed(factory, batch_id, "never submitted: the command that created it stopped")
    return len(stale)


def tasks_of(session: Session, batch_id: int) -> list[JobTask]:
    return list(
        session.scalars(
            select(JobTask).where(JobTask.batch_id == batch_id).order_by(JobTask.task_index)
        )
    )
