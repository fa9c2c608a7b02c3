"""What the commands that submit job arrays share: options (defined once) and helpers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ccat_hpc.cli.context import AppContext
from ccat_hpc.db.states import JobTaskState
from ccat_hpc.errors import NotFoundError, UsageError
from ccat_hpc.executors.factory import EXECUTORS, default_executor_name

if TYPE_CHECKING:
    from ccat_hpc.executors.base import Executor
    from ccat_hpc.jobs.task_rows import TaskStore
    from ccat_hpc.sites.schema import SlurmProfile

FC = TypeVar("FC", bound=Callable[..., Any])

JOBS_DIR_ENV = "CCAT_HPC_JOBS_DIR"

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
    default=lambda: os.environ.get(JOBS_DIR_ENV, "ccat-hpc-jobs"),
    show_default="$CCAT_HPC_JOBS_DIR or ./ccat-hpc-jobs",
    help="Folder for job scripts and logs (on a shared file system for Slurm).",
)
SITE_OPTION = click.option("--site", help="Site whose Slurm profiles apply (ops-db name).")
WAIT_OPTION = click.option("--wait", is_flag=True, help="Wait for the end and print the outcome.")
OUTPUT_OPTION = click.option(
    "--json",
    "output",
    flag_value="json",
    help="Print the result as one JSON object.",
)
PARSABLE_OPTION = click.option(
    "--parsable",
    "output",
    flag_value="parsable",
    help="Print only the batch id (as `sbatch --parsable` does).",
)


def output_options(function: FC) -> FC:
    """``--json`` and ``--parsable`` (one of them; text when neither)."""
    return OUTPUT_OPTION(PARSABLE_OPTION(function))


def echo_result(output: str | None, batch_id: int, text: str, data: dict[str, Any]) -> None:
    """The result of a submission in the chosen form."""
    if output == "json":
        click.echo(json.dumps({"batch": batch_id, **data}))
    elif output == "parsable":
        click.echo(str(batch_id))
    else:
        click.echo(text)


def make_named_executor(name: str) -> Executor:
    """The executor called ``name`` (imported only when a command needs it)."""
    from ccat_hpc.executors.factory import make_executor

    return make_executor(name)


def absolute_workdir(workdir: Path) -> Path:
    """The jobs folder, made absolute (task processes and Slurm run elsewhere) and created."""
    folder = workdir.expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--workdir {workdir}: cannot use it: {exc.strerror or exc}") from None
    return folder


def task_environment(app: AppContext) -> dict[str, str]:
    """What every task needs from the submitter: where ops-db is (never put into a script)."""
    return {"CCAT_HPC_DB": app.db_url}


def task_store(app: AppContext) -> TaskStore:
    """Where `job run` records its task: a direct connection to ops-db (no SQLAlchemy)
    when one opens on the current schema, else SQLAlchemy's sessions, which say why not
    if ops-db cannot be used. Handlers get the sessions, made when they first ask."""
    from ccat_hpc.config import parse_db_url
    from ccat_hpc.jobs.direct_db import open_direct
    from ccat_hpc.jobs.task_rows import TaskStore
    from ccat_hpc.pipeline.tasks import LazySessions

    direct = open_direct(parse_db_url(app.db_url))
    if direct is None:
        return TaskStore(app.sessions())
    return TaskStore(LazySessions(app.sessions), direct)


def site_profile(app: AppContext, site: str | None, kind: str) -> SlurmProfile:
    from ccat_hpc.db.session import transaction
    from ccat_hpc.jobs.batches import profile_for

    with transaction(app.sessions()) as session:
        return profile_for(_site_profiles(session, site), kind)


def _site_profiles(session: Any, site: str | None) -> dict[str, Any]:
    from sqlalchemy import select

    from ccat_hpc.db.models import Site

    if site is None:
        return {}
    row = session.scalars(select(Site).where(Site.name == site)).one_or_none()
    if row is None:
        known = ", ".join(session.scalars(select(Site.name).order_by(Site.name))) or "none"
        raise NotFoundError(f"no site {site!r} in ops-db (known: {known}; `ccat-hpc sites load`)")
    return dict(row.settings.get("slurm_profiles", {}))


def wait_and_report(app: AppContext, batch_id: int, executor_name: str, quiet: bool) -> bool:
    """Wait for the batch; print its outcome; return whether every task succeeded."""
    from ccat_hpc.jobs.tracking import wait_for_batch

    summary = wait_for_batch(app.sessions(), batch_id, make_named_executor(executor_name))
    if not quiet:
        click.echo(f"batch {batch_id}: {summary.state.value} ({summary.counts_text()})")
    if not summary.all_succeeded:
        _print_failures(app, batch_id)
    return summary.all_succeeded


def _print_failures(app: AppContext, batch_id: int) -> None:
    from ccat_hpc.db.session import transaction
    from ccat_hpc.jobs.batches import tasks_of

    with transaction(app.sessions()) as session:
        for task in tasks_of(session, batch_id):
            if task.state != JobTaskState.SUCCEEDED:
                click.echo(f"  task {task.task_index}: {task.state.value}: {task.reason}", err=True)
