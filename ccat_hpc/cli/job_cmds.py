"""``ccat-hpc job`` (run, submit, status, wait, cancel) and ``ccat-hpc checksum``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.errors import NotFoundError
from ccat_hpc.executors.factory import EXECUTORS, default_executor_name

EXECUTOR_OPTION = click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default=default_executor_name,
    show_default="$CCAT_HPC_EXECUTOR or local",
    help="Where the job array runs.",
)
WORKDIR_OPTION = click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("CCAT_HPC_JOBS_DIR", "ccat-hpc-jobs"),
    show_default="$CCAT_HPC_JOBS_DIR or ./ccat-hpc-jobs",
    help="Folder for job scripts and logs (on a shared file system for Slurm).",
)
SITE_OPTION = click.option("--site", help="Site whose Slurm profiles apply (ops-db name).")
WAIT_OPTION = click.option("--wait", is_flag=True, help="Wait for the end and print the outcome.")


@click.group()
def job() -> None:
    """Job arrays: run one task, submit, follow and cancel batches."""


@job.command("run")
@click.argument("kind")
@click.option("--batch", "batch_id", type=int, required=True)
@click.option("--task", "task_index", type=int, help="Task index (default: from Slurm's env).")
@pass_app
def run(app: AppContext, kind: str, batch_id: int, task_index: int | None) -> None:
    """Run one task of batch BATCH (what every job template calls)."""
    from ccat_hpc.engine.mpi import world
    from ccat_hpc.jobs.kinds import job_kinds
    from ccat_hpc.jobs.runner import run_task, task_index_from

    kinds = job_kinds()
    comm = world()
    if comm is not None and comm.Get_rank() != 0:
        helper = kinds[kind].other_ranks if kind in kinds else None
        if helper is not None:
            helper(comm)
        return
    index = task_index if task_index is not None else task_index_from(os.environ)
    handlers = {name: k.handler for name, k in kinds.items()}
    code = run_task(app.sessions(), kind, batch_id, index, handlers)
    sys.exit(code)


@job.command("submit")
@click.argument("kind")
@click.option("--tasks", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--param", "params", multiple=True, help="KEY=JSON parameter for the tasks.")
@click.option("--throttle", type=int, help="At most this many tasks at a time.")
@EXECUTOR_OPTION
@WORKDIR_OPTION
@SITE_OPTION
@WAIT_OPTION
@pass_app
def submit(
    app: AppContext,
    kind: str,
    tasks: int,
    params: tuple[str, ...],
    throttle: int | None,
    executor: str,
    workdir: Path,
    site: str | None,
    wait: bool,
) -> None:
    """Submit a batch of TASKS tasks of KIND (noop, sleep, mpi) and print its id."""
    parameters = {}
    for item in params:
        key, _, value = item.partition("=")
        parameters[key] = json.loads(value) if value else True
    items: list[list[Any]] = [[] for _ in range(tasks)]
    batch_id = _submit(app, kind, items, executor, workdir, site, parameters, throttle)
    click.echo(f"batch {batch_id} submitted ({tasks} task(s), {executor})")
    if wait:
        _wait_and_report(app, batch_id, executor)


def _submit(
    app: AppContext,
    kind: str,
    items: list[list[Any]],
    executor_name: str,
    workdir: Path,
    site: str | None,
    parameters: dict[str, Any],
    throttle: int | None,
) -> int:
    from ccat_hpc.db.session import transaction
    from ccat_hpc.executors.factory import make_executor
    from ccat_hpc.jobs.batches import create_and_submit, profile_for

    factory = app.sessions()
    with transaction(factory) as session:
        profile = profile_for(_site_profiles(session, site), kind)
    batch_id, _ = create_and_submit(
        factory,
        make_executor(executor_name),
        kind,
        items,
        working_dir=workdir.resolve(),
        environment={"CCAT_HPC_DB": app.db_url},
        profile=profile,
        parameters=parameters,
        site_name=site,
        throttle=throttle,
    )
    return batch_id


def _site_profiles(session: Any, site: str | None) -> dict[str, Any]:
    from sqlalchemy import select

    from ccat_hpc.db.models import Site

    if site is None:
        return {}
    row = session.scalars(select(Site).where(Site.name == site)).one_or_none()
    if row is None:
        raise NotFoundError(f"no site {site!r} in ops-db (load site configs first)")
    return dict(row.settings.get("slurm_profiles", {}))


def _wait_and_report(app: AppContext, batch_id: int, executor_name: str) -> None:
    from ccat_hpc.executors.factory import make_executor
    from ccat_hpc.jobs.batches import wait_for_batch

    summary = wait_for_batch(app.sessions(), batch_id, make_executor(executor_name))
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.tasks.items()))
    click.echo(f"batch {batch_id}: {summary.state.value} ({counts})")
    if set(summary.tasks) - {"succeeded"}:
        _print_failures(app, batch_id)
        sys.exit(1)


def _print_failures(app: AppContext, batch_id: int) -> None:
    from ccat_hpc.db.session import transaction
    from ccat_hpc.jobs.batches import tasks_of

    with transaction(app.sessions()) as session:
        for task in tasks_of(session, batch_id):
            if task.state.value != "succeeded":
                click.echo(f"  task {task.task_index}: {task.state.value}: {task.reason}", err=True)


@job.command("status")
@click.argument("batch_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def status(app: AppContext, batch_id: int, as_json: bool) -> None:
    """Track BATCH once and show its tasks."""
    from ccat_hpc.db.session import transaction
    from ccat_hpc.executors.factory import make_executor
    from ccat_hpc.jobs.batches import tasks_of, track_batch

    factory = app.sessions()
    executor_name = _executor_of(app, batch_id)
    summary = track_batch(factory, batch_id, make_executor(executor_name))
    with transaction(factory) as session:
        rows = [
            {
                "task": t.task_index,
                "state": t.state.value,
                "external_id": t.external_id,
                "exit_code": t.exit_code,
                "executor_state": t.executor_state,
                "reason": t.reason,
            }
            for t in tasks_of(session, batch_id)
        ]
    if as_json:
        click.echo(json.dumps({"batch": batch_id, "state": summary.state.value, "tasks": rows}))
        return
    click.echo(f"batch {batch_id} ({executor_name}): {summary.state.value}")
    for row in rows:
        reason = f"  {row['reason']}" if row["reason"] else ""
        click.echo(f"  task {row['task']:>4}  {row['state']:<9} {row['external_id'] or ''}{reason}")


@job.command("wait")
@click.argument("batch_id", type=int)
@pass_app
def wait_command(app: AppContext, batch_id: int) -> None:
    """Wait until BATCH is done; exit non-zero if any task did not succeed."""
    _wait_and_report(app, batch_id, _executor_of(app, batch_id))


@job.command("cancel")
@click.argument("batch_id", type=int)
@pass_app
def cancel(app: AppContext, batch_id: int) -> None:
    """Cancel every task of BATCH that has not ended."""
    from ccat_hpc.executors.factory import make_executor
    from ccat_hpc.jobs.batches import cancel_batch

    cancel_batch(app.sessions(), batch_id, make_executor(_executor_of(app, batch_id)))
    click.echo(f"batch {batch_id}: cancel requested")


def _executor_of(app: AppContext, batch_id: int) -> str:
    """The executor a batch was submitted to (as recorded in ops-db)."""
    from ccat_hpc.db.models import JobBatch
    from ccat_hpc.db.session import transaction

    with transaction(app.sessions()) as session:
        batch = session.get(JobBatch, batch_id)
        if batch is None:
            raise NotFoundError(f"no job batch {batch_id}")
        return batch.executor


@click.command("checksum")
@click.option("--bytes-per-task", type=int, default=4 * 1024**3, show_default=True)
@EXECUTOR_OPTION
@WORKDIR_OPTION
@SITE_OPTION
@WAIT_OPTION
@pass_app
def checksum(
    app: AppContext, bytes_per_task: int, executor: str, workdir: Path, site: str | None, wait: bool
) -> None:
    """Submit the checksum job array for every filed file that has not been checked."""
    from ccat_hpc.db.session import transaction
    from ccat_hpc.executors.factory import make_executor
    from ccat_hpc.jobs.batches import profile_for
    from ccat_hpc.jobs.checksum_batch import submit_checksum

    factory = app.sessions()
    with transaction(factory) as session:
        profile = profile_for(_site_profiles(session, site), "checksum")
    submitted = submit_checksum(
        factory,
        make_executor(executor),
        {"CCAT_HPC_DB": app.db_url},
        workdir.resolve(),
        profile,
        bytes_per_task,
        site,
    )
    if submitted is None:
        click.echo("nothing to checksum: no file is waiting")
        return
    click.echo(
        f"batch {submitted.batch_id} submitted: {len(submitted.file_ids)} file(s) "
        f"in {submitted.tasks} task(s)"
    )
    if wait:
        _wait_and_report(app, submitted.batch_id, executor)
        _report_files(app, submitted.file_ids)


def _report_files(app: AppContext, file_ids: list[int]) -> None:
    from collections import Counter

    from sqlalchemy import select

    from ccat_hpc.db.models import RawDataFile
    from ccat_hpc.db.session import transaction

    with transaction(app.sessions()) as session:
        rows = session.execute(
            select(RawDataFile.relative_path, RawDataFile.state, RawDataFile.failure_reason).where(
                RawDataFile.id.in_(file_ids)
            )
        ).all()
    counts = Counter(state.value for _, state, _ in rows)
    click.echo("files: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    bad = [
        (path, state, reason)
        for path, state, reason in rows
        if state.value in ("corrupt", "missing")
    ]
    for path, state, reason in bad[:20]:
        click.echo(f"  {state.value}: {path}: {reason}", err=True)
    if bad:
        sys.exit(1)
