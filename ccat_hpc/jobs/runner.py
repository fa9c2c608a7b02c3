"""``ccat-hpc job run KIND --batch ID``: one array task, from ops-db to ops-db.

The task finds its row by (batch id, task index), marks it RUNNING, runs the job
kind's handler on its work items and records SUCCEEDED with a result, or FAILED with
a reason and whether a retry could help. The exit code follows (0 only on success),
so Slurm's view and ops-db agree and ``afterok`` dependencies hold.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import JobBatch, JobTask
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobTaskState, check_transition
from ccat_hpc.errors import CcatHpcError, NotFoundError


class TaskFailure(CcatHpcError):
    """A task could not do its work; ``retryable`` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.retryable = retryable


@dataclass(frozen=True)
class TaskContext:
    factory: sessionmaker[Session]
    batch_id: int
    task_index: int
    items: list[Any]
    parameters: Mapping[str, Any]
    environ: Mapping[str, str]


Handler = Callable[[TaskContext], dict[str, Any]]


def task_index_from(environ: Mapping[str, str]) -> int:
    """The batch task index: the array piece's offset plus Slurm's array task id."""
    array_id = environ.get("SLURM_ARRAY_TASK_ID")
    if array_id is None:
        raise TaskFailure("SLURM_ARRAY_TASK_ID is not set: give --task or run as an array task")
    return int(environ.get("CCAT_HPC_TASK_OFFSET", "0")) + int(array_id)


def external_id(environ: Mapping[str, str]) -> str | None:
    job, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else environ.get("SLURM_JOB_ID")


def _task_row(session: Session, batch_id: int, task_index: int) -> JobTask | None:
    return session.scalars(
        select(JobTask).where(JobTask.batch_id == batch_id, JobTask.task_index == task_index)
    ).one_or_none()


def start_task(
    factory: sessionmaker[Session],
    kind: str,
    batch_id: int,
    task_index: int,
    environ: Mapping[str, str],
) -> TaskContext:
    """Mark the task RUNNING and return what its handler needs."""
    with transaction(factory) as session:
        batch = session.get(JobBatch, batch_id)
        if batch is None:
            raise NotFoundError(f"no job batch {batch_id}")
        if batch.kind != kind:
            raise TaskFailure(f"batch {batch_id} is a {batch.kind!r} batch, not {kind!r}")
        task = _task_row(session, batch_id, task_index)
        if task is None:
            raise NotFoundError(f"batch {batch_id} has no task {task_index}")
        check_transition(task.state, JobTaskState.RUNNING)
        task.state = JobTaskState.RUNNING
        task.attempts += 1
        task.started_at = utcnow()
        task.finished_at = None
        task.host = socket.gethostname()
        task.external_id = external_id(environ)
        return TaskContext(
            factory, batch_id, task_index, list(task.items), dict(batch.parameters), environ
        )


def finish_task(
    factory: sessionmaker[Session],
    context: TaskContext,
    state: JobTaskState,
    *,
    result: dict[str, Any] | None = None,
    reason: str | None = None,
    retryable: bool | None = None,
    exit_code: int = 0,
) -> None:
    with transaction(factory) as session:
        task = _task_row(session, context.batch_id, context.task_index)
        if task is None:
            raise NotFoundError(f"batch {context.batch_id} has no task {context.task_index}")
        if task.state != JobTaskState.RUNNING:
            return  # the tracker or a cancel got there first; its record stands
        task.state = state
        task.finished_at = utcnow()
        task.result, task.reason, task.retryable = result, reason, retryable
        task.exit_code = exit_code


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
    try:
        result = handler(context)
    except TaskFailure as exc:
        finish_task(
            factory,
            context,
            JobTaskState.FAILED,
            reason=str(exc),
            retryable=exc.retryable,
            exit_code=1,
        )
        return 1
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        finish_task(
            factory, context, JobTaskState.FAILED, reason=reason, retryable=True, exit_code=1
        )
        raise
    finish_task(factory, context, JobTaskState.SUCCEEDED, result=result)
    return 0
