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

The task's own rows are read and moved with plain SQL (:mod:`ccat_hpc.jobs.task_rows`),
so a task whose handler needs no ORM (noop, sleep, mpi) never imports SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeAlias

from ccat_hpc.db.states import JobBatchState, JobTaskState
from ccat_hpc.errors import NotFoundError
from ccat_hpc.jobs.kinds import gives_back_items, release_items
from ccat_hpc.jobs.task_rows import JOB_BATCH, JOB_TASK, TaskRow, TaskRows, TaskStore
from ccat_hpc.logline import log_line
from ccat_hpc.metrics import MetricsSink, NullSink, emit, series, sink_or_nothing
from ccat_hpc.pipeline.tasks import (
    Handler,
    StopRequest,
    TaskContext,
    TaskFailure,
    TaskInterrupted,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["TaskContext", "TaskFailure", "TaskStore", "run_task", "task_index_from"]

#: where a task records itself: a store, or ops-db's sessions
OpsDb: TypeAlias = "TaskStore | sessionmaker[Session]"

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


def _store(ops_db: OpsDb) -> TaskStore:
    return ops_db if isinstance(ops_db, TaskStore) else TaskStore(ops_db)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _task_row(rows: TaskRows, batch_id: int, task_index: int) -> TaskRow:
    task = rows.task(batch_id, task_index)
    if task is None:
        raise NotFoundError(f"batch {batch_id} has no task {task_index}")
    return task


def _check_runnable(task: TaskRow, running_as: str | None) -> None:
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
    ops_db: OpsDb,
    kind: str,
    batch_id: int,
    task_index: int,
    environ: Mapping[str, str],
) -> TaskContext:
    """Mark the task (and its batch, if first) RUNNING and return what its handler needs."""
    store = _store(ops_db)
    with store.rows() as rows:
        batch = rows.batch(batch_id)
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
        task = _task_row(rows, batch_id, task_index)
        _check_runnable(task, external_id(environ))
        if not rows.move(
            JOB_TASK,
            task.id,
            task.state,
            JobTaskState.RUNNING,
            attempts=task.attempts + 1,
            started_at=_utcnow(),
            finished_at=None,
            host=socket.gethostname(),
            external_id=external_id(environ),
        ):
            now = _task_row(rows, batch_id, task_index)  # who got there first
            raise TaskFailure(f"task {task_index} of batch {batch_id} is {now.state.value}")
        rows.move(JOB_BATCH, batch_id, JobBatchState.SUBMITTED, JobBatchState.RUNNING)
    return TaskContext(
        store.sessions,
        batch_id,
        task_index,
        list(task.items),
        dict(batch.parameters),
        environ,
        executor=batch.executor,
    )


def finish_task(
    ops_db: OpsDb,
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
    store = _store(ops_db)
    values = {"result": result, "reason": reason, "retryable": retryable, "exit_code": exit_code}
    if state == JobTaskState.SUCCEEDED or not gives_back_items(kind, context.items):
        with store.rows() as rows:
            _record_end(rows, context, state, values)
        return
    with store.with_session() as (rows, session):
        if _record_end(rows, context, state, values):
            release_items(session, kind, context.items, context.batch_id)


def _record_end(
    rows: TaskRows, context: TaskContext, state: JobTaskState, values: dict[str, Any]
) -> bool:
    """Move the RUNNING task to ``state``; False when the tracker or a cancel got there
    first (its record stands)."""
    task = _task_row(rows, context.batch_id, context.task_index)
    if task.state != JobTaskState.RUNNING:
        return False
    rows.move(JOB_TASK, task.id, task.state, state, finished_at=_utcnow(), **values)
    return True


def give_back(ops_db: OpsDb, context: TaskContext, kind: str) -> None:
    """Release the task's claimed items; its outcome is left to the executor's verdict.

    A task stopped by a signal (time limit, cancel) keeps its RUNNING row: the tracker
    records what the executor says happened (TIMEOUT, CANCELLED, NODE_FAIL). Only a task
    still RUNNING gives anything back: if the tracker has already recorded its end, the
    items were given back then and may belong to another batch now.
    """
    if not gives_back_items(kind, context.items):
        return
    with _store(ops_db).with_session() as (rows, session):
        task = _task_row(rows, context.batch_id, context.task_index)
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
    ops_db: OpsDb,
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
    store = _store(ops_db)
    context = start_task(store, kind, batch_id, task_index, environ or dict(os.environ))
    metrics = sink_or_nothing(context.environ)
    started = time.monotonic()
    code, result = 1, None  # a handler that raised: failed
    try:
        code, result = _run_handler(store, context, kind, handler)
    finally:
        outcome = "done" if code == 0 else "failed"
        _emit_task(metrics, context, kind, outcome, time.monotonic() - started, result)
    return code


def _emit_task(
    metrics: MetricsSink,
    context: TaskContext,
    kind: str,
    outcome: str,
    seconds: float,
    result: Mapping[str, Any] | None,
) -> None:
    """The task's point (nothing without a metrics URL); waits briefly to send it."""
    moved = (result or {}).get("bytes", 0)
    tags = {"kind": kind, "executor": context.executor or "unknown", "outcome": outcome}
    emit(
        metrics,
        series.TASK,
        tags,
        seconds=seconds,
        items=len(context.items),
        bytes=moved if isinstance(moved, int) and not isinstance(moved, bool) else 0,
    )
    if not isinstance(metrics, NullSink) and kind in ITEM_KINDS:
        _emit_items(metrics, context, kind)
    metrics.close(timeout=2.0)


#: the kinds whose items are rows in ops-db (their outcomes are read back for metrics)
ITEM_KINDS = frozenset({"checksum", "package", "bundle", "transfer", "archive"})


def _emit_items(metrics: MetricsSink, context: TaskContext, kind: str) -> None:
    """A point per outcome of the task's items; never fails the task (a metrics matter)."""
    from ccat_hpc.db.session import transaction
    from ccat_hpc.pipeline.item_outcomes import outcomes

    try:
        with transaction(context.factory) as session:
            found = outcomes(session, kind, context.items)
    except Exception as exc:  # ops-db gone meanwhile: the task's outcome is recorded
        log_line(f"metrics: the outcomes of this task's items were not read: {exc}")
        return
    for item in found:
        emit(
            metrics,
            series.ITEMS,
            {"step": kind, "outcome": item.outcome, "failure_class": item.failure_class},
            items=item.items,
            files=item.files,
            bytes=item.bytes,
        )


def _run_handler(
    store: TaskStore, context: TaskContext, kind: str, handler: Handler
) -> tuple[int, dict[str, Any] | None]:
    """Run the handler and record the outcome: (exit code, its result)."""
    batch_id, task_index = context.batch_id, context.task_index
    name = f"task {task_index} of batch {batch_id} ({kind})"
    log_line(f"{name}: started on {socket.gethostname()}, {len(context.items)} item(s)")
    try:
        with stop_on_sigterm(context.stop):
            result = handler(context)
    except TaskInterrupted as exc:
        log_line(f"{name}: {exc}; what it finished is recorded, the rest given back")
        give_back(store, context, kind)
        return 128 + exc.signal_number, None
    except TaskFailure as exc:
        log_line(f"{name}: failed: {exc}")
        finish_task(
            store,
            context,
            kind,
            JobTaskState.FAILED,
            reason=str(exc),
            retryable=exc.retryable,
            exit_code=1,
        )
        return 1, None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log_line(f"{name}: failed: {reason}")
        finish_task(
            store, context, kind, JobTaskState.FAILED, reason=reason, retryable=True, exit_code=1
        )
        raise
    finish_task(store, context, kind, JobTaskState.SUCCEEDED, result=result)
    log_line(f"{name}: succeeded: {result}")
    return 0, result
