"""``ccat-hpc job``: run one task, submit, list, follow and cancel job batches."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.job_support import (
    EXECUTOR_OPTION,
    SITE_OPTION,
    WAIT_OPTION,
    WORKDIR_OPTION,
    absolute_workdir,
    echo_result,
    make_named_executor,
    output_options,
    site_profile,
    task_environment,
    task_store,
    wait_and_report,
)
from ccat_hpc.cli.params import ROW_ID
from ccat_hpc.db.states import JobBatchState
from ccat_hpc.errors import DatabaseUnavailable, NotFoundError
from ccat_hpc.executors.process import ExecutorError, UnknownJob
from ccat_hpc.jobs.kinds import job_kind, job_kinds
from ccat_hpc.text import one_line

UNFINISHED = (JobBatchState.PENDING, JobBatchState.SUBMITTED, JobBatchState.RUNNING)


@click.group()
def job() -> None:
    """Job arrays: run one task, submit, list, follow and cancel batches."""


@job.command("run")
@click.argument("kind")
@click.option("--batch", "batch_id", type=ROW_ID, required=True)
@click.option(
    "--task",
    "task_index",
    type=click.IntRange(min=0, max=2**31 - 1),
    help="Task index (default: from Slurm).",
)
@pass_app
def run(app: AppContext, kind: str, batch_id: int, task_index: int | None) -> None:
    """Run one task of batch BATCH (what every job template calls)."""
    from ccat_hpc.cli.main import db_error_line
    from ccat_hpc.jobs.ranks import task_world
    from ccat_hpc.jobs.runner import run_task, task_index_from

    job_kind(kind)  # an unknown kind is refused before anything is read
    kinds = job_kinds()
    comm = task_world()
    if comm is not None and comm.Get_rank() != 0:
        helper = kinds[kind].other_ranks
        if helper is not None:
            helper(comm)
        return
    index = task_index if task_index is not None else task_index_from(os.environ)
    handlers = {name: k.handler for name, k in kinds.items()}
    store = task_store(app)
    try:
        code = run_task(store, kind, batch_id, index, handlers)
    except store.operational_errors as exc:  # the direct connection's, as SQLAlchemy's are
        raise DatabaseUnavailable(db_error_line(exc, app.db_url)) from exc
    finally:
        store.close()
    sys.exit(code)


def _parameters(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for item in values:
        key, sign, text = item.partition("=")
        if not key or not sign:
            raise click.BadParameter(f"{item!r}: expected KEY=JSON, e.g. seconds=30")
        try:
            parameters[key] = json.loads(text)
        except (ValueError, RecursionError):
            raise click.BadParameter(f"{item[:80]!r}: {text[:60]!r} is not JSON") from None
    return parameters


SUBMITTABLE = sorted(name for name, kind in job_kinds().items() if kind.submittable)


@job.command("submit")
@click.argument("kind", type=click.Choice(SUBMITTABLE), metavar="KIND")
@click.option("--tasks", type=click.IntRange(min=1, max=100_000), default=1, show_default=True)
@click.option(
    "--param",
    "parameters",
    multiple=True,
    callback=_parameters,
    help="KEY=JSON parameter for the tasks (e.g. seconds=30).",
)
@click.option("--throttle", type=click.IntRange(min=1), help="At most this many tasks at a time.")
@EXECUTOR_OPTION
@WORKDIR_OPTION
@SITE_OPTION
@WAIT_OPTION
@output_options
@pass_app
def submit(
    app: AppContext,
    kind: str,
    tasks: int,
    parameters: dict[str, Any],
    throttle: int | None,
    executor: str,
    workdir: Path,
    site: str | None,
    wait: bool,
    output: str | None,
) -> None:
    """Submit a batch of TASKS diagnostic tasks of KIND (noop, sleep, mpi); print its id."""
    from ccat_hpc.jobs.batches import create_and_submit

    factory = app.sessions()
    batch_id, _ = create_and_submit(
        factory,
        make_named_executor(executor),
        kind,
        [[] for _ in range(tasks)],
        working_dir=absolute_workdir(workdir),
        environment=task_environment(app),
        profile=site_profile(app, site, kind),
        parameters=parameters,
        site_name=site,
        throttle=throttle,
    )
    text = f"batch {batch_id} submitted ({tasks} task(s), {executor})"
    echo_result(output, batch_id, text, {"tasks": tasks, "executor": executor})
    if wait and not wait_and_report(app, batch_id, executor, quiet=output is not None):
        sys.exit(1)


def _task_rows(app: AppContext, batch_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from ccat_hpc.db.session import transaction
    from ccat_hpc.executors.base import task_log_path
    from ccat_hpc.jobs.batches import arrays_of, get_batch, tasks_of

    with transaction(app.sessions()) as session:
        batch = get_batch(session, batch_id)
        arrays = arrays_of(batch)
        head = {
            "batch": batch_id,
            "kind": batch.kind,
            "executor": batch.executor,
            "state": batch.state.value,
            "reason": batch.failure_reason,
        }
        rows = [
            {
                "task": t.task_index,
                "state": t.state.value,
                "external_id": t.external_id,
                "host": t.host,
                "attempts": t.attempts,
                "exit_code": t.exit_code,
                "executor_state": t.executor_state,
                "reason": t.reason,
                "log": _existing(
                    task_log_path(batch.working_dir, batch.kind, batch.id, arrays, t.task_index)
                ),
            }
            for t in tasks_of(session, batch_id)
        ]
    return head, rows


def _existing(path: Path | None) -> str | None:
    """The log file, when it exists (a task that never started has none)."""
    return str(path) if path is not None and path.is_file() else None


def _track(app: AppContext, batch_id: int) -> ExecutorError | None:
    """Track the batch once; the executor's error when it cannot answer."""
    from ccat_hpc.jobs.tracking import track_batch

    try:
        track_batch(app.sessions(), batch_id, make_named_executor(executor_of(app, batch_id)))
    except ExecutorError as exc:
        return exc
    return None


def _problem_line(batch_id: int, exc: ExecutorError) -> str:
    force = f"`ccat-hpc job cancel {batch_id} --force`"
    if isinstance(exc, UnknownJob):
        return f"{exc}; {force} closes the batch"
    return (
        f"could not ask the executor ({exc}); if the batch system has lost the batch, "
        f"{force} closes it (tasks of it still running then record nothing)"
    )


@job.command("status")
@click.argument("batch_id", type=ROW_ID)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status(app: AppContext, batch_id: int, as_json: bool) -> None:
    """Track BATCH once and show its tasks, their hosts, outcomes and log files."""
    failure = _track(app, batch_id)
    problem = None if failure is None else _problem_line(batch_id, failure)
    head, rows = _task_rows(app, batch_id)
    if as_json:
        click.echo(json.dumps({**head, "tracking_problem": problem, "tasks": rows}))
        return
    if problem:
        click.echo(f"warning: {problem}", err=True)
    reason = f": {one_line(head['reason'])}" if head["reason"] else ""
    click.echo(f"batch {batch_id} ({head['kind']}, {head['executor']}): {head['state']}{reason}")
    for row in rows:
        why = f"  {one_line(row['reason'])}" if row["reason"] else ""
        click.echo(f"  task {row['task']:>4}  {row['state']:<9} {row['external_id'] or ''}{why}")
        if row["log"]:
            click.echo(f"             log {row['log']}")


def _track_unfinished(app: AppContext, batch_ids: list[int]) -> None:
    """Follow these batches; when an executor does not answer, ask it about no more of them
    (each question could wait for its timeout) and say so."""
    silent: set[str] = set()
    for batch_id in batch_ids:
        name = executor_of(app, batch_id)
        if name in silent:
            continue
        failure = _track(app, batch_id)
        if failure is not None:
            if not isinstance(failure, UnknownJob):
                silent.add(name)
            line = _problem_line(batch_id, failure)
            click.echo(f"warning: batch {batch_id}: {line}; states shown as last seen", err=True)


@job.command("list")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=20, show_default=True)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in JobBatchState]),
    help="Only batches in this state (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_batches(app: AppContext, limit: int, states: tuple[str, ...], as_json: bool) -> None:
    """The newest batches with their tasks counted by state (unfinished ones tracked first)."""
    from ccat_hpc.db.session import transaction
    from ccat_hpc.jobs.tracking import recent_batches

    wanted = [JobBatchState(s) for s in states]
    with transaction(app.sessions()) as session:
        listing = recent_batches(session, limit, wanted)
    if any(entry.state in UNFINISHED for entry in listing):
        _track_unfinished(app, [e.batch_id for e in listing if e.state in UNFINISHED])
        with transaction(app.sessions()) as session:
            listing = recent_batches(session, limit, wanted)
    if as_json:
        click.echo(json.dumps([entry.to_json() for entry in listing]))
        return
    if not listing:
        click.echo("no job batches")
    for entry in listing:
        counts = ", ".join(f"{n} {s.value}" for s, n in sorted(entry.tasks.items()))
        created = entry.created_at.strftime("%Y-%m-%d %H:%M")
        reason = f"  ({one_line(entry.reason)})" if entry.reason else ""
        click.echo(
            f"{entry.batch_id:>6}  {entry.kind:<10} {entry.executor:<6} {entry.state.value:<13} "
            f"{created}  {entry.task_count:>5} task(s): {counts}{reason}"
        )


@job.command("wait")
@click.argument("batch_id", type=ROW_ID)
@pass_app
def wait_command(app: AppContext, batch_id: int) -> None:
    """Wait until BATCH is done; exit 1 if any task did not succeed."""
    if not wait_and_report(app, batch_id, executor_of(app, batch_id), quiet=False):
        sys.exit(1)


@job.command("cancel")
@click.argument("batch_id", type=ROW_ID)
@click.option(
    "--force",
    is_flag=True,
    help="Also when the executor no longer knows the batch: record its open tasks cancelled "
    "and give their work back.",
)
@pass_app
def cancel(app: AppContext, batch_id: int, force: bool) -> None:
    """Cancel every task of BATCH that has not ended."""
    from ccat_hpc.jobs.batches import cancel_batch

    executor = make_named_executor(executor_of(app, batch_id))
    state = cancel_batch(app.sessions(), batch_id, executor, force=force)
    click.echo(f"batch {batch_id}: {state.value}")


def executor_of(app: AppContext, batch_id: int) -> str:
    """The executor a batch was submitted to (as recorded in ops-db)."""
    from ccat_hpc.db.models import JobBatch
    from ccat_hpc.db.session import transaction

    with transaction(app.sessions()) as session:
        batch = session.get(JobBatch, batch_id)
        if batch is None:
            raise NotFoundError(f"no job batch {batch_id}")
        return batch.executor
