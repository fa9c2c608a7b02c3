"""``ccat-hpc job run KIND --batch ID``: one array task, from ops-db to ops-db.

The task finds its row by (batch id, task index), marks it RUNNING (and its batch),
runs the job kind's handler on its work items and records SUCCEEDED with a result, or
FAILED with a reason and whether a retry could help; the claimed items it did not
finish are given back in the same transaction. The exit code follows (0 only on
success), so Slurm's view and ops-db agree and ``afterok`` dependencies hold. SIGTERM
(a time limit, a cancel) stops the handler so that what it had finished is recorded;
its claimed items are given back and the task's row is left to the tracker, which
records what the executor says happened (TIMEOUT, CANCELLED). The task log gets one
timestamped line when the task starts and one when it ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import JobBatch, JobTask
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState
from ccat_hpc.db.transitions import move, move_row
from ccat_hpc.errors import NotFoundError
from ccat_hpc.jobs.kinds import release_items
from ccat_hpc.logline import log_line
from ccat_hpc.pipeline.tasks import (
    Handler,
    StopRequest,
    TaskContext,
    TaskFailure,
    TaskInterrupted,
)

__all__ = ["TaskContext", "TaskFailure", "run_task", "task_index_from"]


#: a task may start while its batch is still being recorded as submitted (PENDING)
RUNNABLE_BATCH_STATES = (JobBatchState.PENDING, JobBatchState.SUBMITTED, JobBatchState.RUNNING)


#: task indices are 32-bit in ops-db (job_task.task_index)
MAX_TASK_INDEX = 2**31 - 1


def task_index_from(environ: Mapping[str, str]) -> int:
    """The batch task index: the array piece's offset plus Slurm's array task id."""
    array_id = environ.get("SLURM_ARRAY_TASK_ID")
    if array_id is None:
        raise TaskFailure("SLURM_ARRAY_TASK_ID is not set: give --task or run as an array task")
    index = _count(environ, "CCAT_HPC_TASK_OFFSET", "0") + _count(environ, "SLURM_ARRAY_TASK_ID")
    if index > MAX_TASK_INDEX:
        raise TaskFailure(f"task index {index} is out of range (at most {MAX_TASK_INDEX})")
    return index


def _count(environ: Mapping[str, str], name: str, default: str | None = None) -> int:
    text = environ.get(name, default) or ""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise TaskFailure(f"{name}={text!r} is not a task number")
    return int(text)


def external_id(environ: Mapping[str, str]) -> str | None:
    job, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else environ.get("SLURM_JOB_ID")


def _task_row(session: Session, batch_id: int, task_index: int) -> JobTask:
    task = session.scalars(
        select(JobTask).where(JobTask.batch_id == batch_id, JobTask.task_index == task_index)
    ).one_or_none()
    if task is None:
        raise NotFoundError(f"batch {batch_id} has no task {task_index}")
    return task


def _check_runnable(task: JobTask, running_as: str | None) -> None:
    """A task runs once at a time: PENDING, or RUNNING again only as the same array task
    (Slurm requeues it under the same job id after a node failure or preemption)."""
    where = f"task {task.task_index} of batch {task.batch_id}"
    if task.state == JobTaskState.RUNNING:
        if running_as is None or running_as != task.external_id:
            raise TaskFailure(
                f"{where} is running already (as {task.external_id or 'another process'}): "
                "refusing to run it twice"
            )
    elif task.state != JobTaskState.PENDING:
        raise TaskFailure(
            f"{where} is already {task.state.value}: nothing to run (submit the work again)"
        )


def start_task(
    factory: sessionmaker[Session],
    kind: str,
    batch_id: int,
    task_index: int,
    environ: Mapping[str, str],
) -> TaskContext:
    """Mark the task (and its batch, if first) RUNNING and return what its handler needs."""
    with transaction(factory) as session:
        batch = session.get(JobBatch, batch_id)
        if batch is None:
            raise NotFoundError(f"no job batch {batch_id}")
        if batch.kind != kind:
            raise TaskFailure(f"batch {batch_id} is a {batch.kind!r} batch, not {kind!r}")
        if batch.state not in RUNNABLE_BATCH_STATES:
            given_back = "" if batch.state == JobBatchState.DONE else ", its work given back"
            raise TaskFailure(
                f"batch {batch_id} is {batch.state.value}: its tasks do not run any more"
                f"{given_back} (submit the work again)"
            )
        task = _task_row(session, batch_id, task_index)
        _check_runnable(task, external_id(environ))
        attempts = task.attempts + 1
        if not move_row(
            session,
            task,
            JobTaskState.RUNNING,
            attempts=attempts,
            started_at=utcnow(),
            finished_at=None,
            host=socket.gethostname(),
            external_id=external_id(environ),
        ):
            raise TaskFailure(f"task {task_index} of batch {batch_id} is {task.state.value}")
        move(session, JobBatch, [batch_id], JobBatchState.SUBMITTED, JobBatchState.RUNNING)
        return TaskContext(
            factory, batch_id, task_index, list(task.items), dict(batch.parameters), environ
        )


def finish_task(
    factory: sessionmaker[Session],
    context: TaskContext,
    kind: str,
    state: JobTaskState,
    *,
    result: dict[str, Any] | None = None,
    reason: str | None = None,
    retryable: bool | None = None,
    exit_code: int = 0,
) -> None:
    """Record the outcome; a failed task gives back the items it did not finish."""
    with transaction(factory) as session:
        task = _task_row(session, context.batch_id, context.task_index)
        if task.state != JobTaskState.RUNNING:
            return  # the tracker or a cancel got there first; its record stands
        move_row(
            session,
            task,
            state,
            finished_at=utcnow(),
            result=result,
            reason=reason,
            retryable=retryable,
            exit_code=exit_code,
        )
        if state != JobTaskState.SUCCEEDED:
            release_items(session, kind, context.items, context.batch_id)


def give_back(factory: sessionmaker[Session], context: TaskContext, kind: str) -> None:
    """Release the task's claimed items; its outcome is left to the executor's verdict.

    A task stopped by a signal (time limit, cancel) keeps its RUNNING row: the tracker
    records what the executor says happened (TIMEOUT, CANCELLED, NODE_FAIL). Only a task
    still RUNNING gives anything back: if the tracker has already recorded its end, the
    items were given back then and may belong to another batch now.
    """
    with transaction(factory) as session:
        task = _task_row(session, context.batch_id, context.task_index)
        if task.state == JobTaskState.RUNNING:
            release_items(session, kind, context.items, context.batch_id)


@contextlib.contextmanager
def stop_on_sigterm(stop: StopRequest) -> Iterator[None]:
    """SIGTERM asks the handler to stop (it checks between pieces of work; main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, _frame: FrameType | None) -> None:
        stop.request(signum)

    previous = signal.signal(signal.SIGTERM, request)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_task(
    factory: sessionmaker[Session],
    kind: str,
    batch_id: int,
    task_index: int,
    handlers: Mapping[str, Handler],
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one task and record its outcome; returns the process exit code."""
    handler = handlers.get(kind)
    if handler is None:
        raise TaskFailure(f"unknown job kind {kind!r}; known: {', '.join(sorted(handlers))}")
    context = start_task(factory, kind, batch_id, task_index, environ or dict(os.environ))
    name = f"task {task_index} of batch {batch_id} ({kind})"
    log_line(f"{name}: started on {socket.gethostname()}, {len(context.items)} item(s)")
    try:
        with stop_on_sigterm(context.stop):
            result = handler(context)
    except TaskInterrupted as exc:
        log_line(f"{name}: {exc}; what it finished is recorded, the rest given back")
        give_back(factory, context, kind)
        return 128 + exc.signal_number
    except TaskFailure as exc:
        log_line(f"{name}: failed: {exc}")
        finish_task(
            factory,
            context,
            kind,
            JobTaskState.FAILED,
            reason=str(exc),
            retryable=exc.retryable,
            exit_code=1,
        )
        return 1
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log_line(f"{name}: failed: {reason}")
        finish_task(
            factory, context, kind, JobTaskState.FAILED, reason=reason, retryable=True, exit_code=1
        )
        raise
    finish_task(factory, context, kind, JobTaskState.SUCCEEDED, result=result)
    log_line(f"{name}: succeeded: {result}")
    return 0
