"""``ccat-hpc checksum``: the checksum job array, and checking files again after a repair."""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

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
    wait_and_report,
)
from ccat_hpc.cli.params import ROW_ID
from ccat_hpc.db.states import RawDataFileState
from ccat_hpc.text import one_line

if TYPE_CHECKING:
    from ccat_hpc.jobs.checksum_batch import RecheckSelection

RECHECKABLE = [
    RawDataFileState.CHECKSUMMED.value,
    RawDataFileState.CORRUPT.value,
    RawDataFileState.MISSING.value,
]
PROBLEM_STATES = (RawDataFileState.CORRUPT, RawDataFileState.MISSING)
SHOWN_PROBLEMS = 20


@click.command("checksum")
@click.option(
    "--bytes-per-task",
    type=click.IntRange(min=1),
    default=4 * 1024**3,
    show_default=True,
    help="Bytes of files per array task.",
)
@click.option(
    "--recheck-state",
    "recheck_states",
    multiple=True,
    type=click.Choice(RECHECKABLE),
    help="Check again every file in this state (repeatable), e.g. after a repair.",
)
@click.option(
    "--recheck-file",
    "recheck_files",
    multiple=True,
    type=ROW_ID,
    help="Check this file again (its id, see `ccat-hpc files list`; repeatable).",
)
@click.option(
    "--recheck-execution",
    "recheck_executions",
    multiple=True,
    type=click.UUID,
    help="Check the files of this execution again (repeatable).",
)
@EXECUTOR_OPTION
@WORKDIR_OPTION
@SITE_OPTION
@WAIT_OPTION
@output_options
@pass_app
def checksum(
    app: AppContext,
    bytes_per_task: int,
    recheck_states: tuple[str, ...],
    recheck_files: tuple[int, ...],
    recheck_executions: tuple[uuid.UUID, ...],
    executor: str,
    workdir: Path,
    site: str | None,
    wait: bool,
    output: str | None,
) -> None:
    """Checksum every filed file not yet checked, as one job array.

    With --recheck-*, the chosen files (checksummed, corrupt or missing) are checked
    again first: their new outcome is recorded and their earlier ones are kept
    (`ccat-hpc files show ID`). Exit status 1 with --wait when a file is corrupt or
    missing; their reasons are in ops-db (`ccat-hpc status`, `ccat-hpc files list
    --state corrupt --state missing`).
    """
    from ccat_hpc.jobs.checksum_batch import RecheckSelection, submit_checksum

    selection = RecheckSelection(
        recheck_files, recheck_executions, [RawDataFileState(s) for s in recheck_states]
    )
    if not selection.empty:
        _requeue(app, selection, quiet=output is not None)
    submitted = submit_checksum(
        app.sessions(),
        make_named_executor(executor),
        task_environment(app),
        absolute_workdir(workdir),
        site_profile(app, site, "checksum"),
        bytes_per_task,
        site,
    )
    if submitted is None:
        _nothing_to_do(output)
        return
    text = (
        f"batch {submitted.batch_id} submitted: {len(submitted.file_ids)} file(s) "
        f"in {submitted.tasks} task(s)"
    )
    data = {"files": len(submitted.file_ids), "tasks": submitted.tasks, "executor": executor}
    echo_result(output, submitted.batch_id, text, data)
    if wait:
        succeeded = wait_and_report(app, submitted.batch_id, executor, quiet=output is not None)
        problems = _report_files(app, submitted.file_ids, quiet=output is not None)
        if problems or not succeeded:
            sys.exit(1)


def _requeue(app: AppContext, selection: RecheckSelection, quiet: bool) -> None:
    from ccat_hpc.db.session import transaction
    from ccat_hpc.jobs.checksum_batch import requeue_selection

    with transaction(app.sessions()) as session:
        count = requeue_selection(session, selection)
    if not quiet:
        click.echo(f"{count} file(s) to check again")


def _nothing_to_do(output: str | None) -> None:
    if output == "json":
        click.echo('{"batch": null, "files": 0, "tasks": 0}')
    elif output is None:
        click.echo("nothing to checksum: no file is waiting")


def _report_files(app: AppContext, file_ids: list[int], quiet: bool) -> int:
    """Print the outcome of the batch's files; return how many are corrupt or missing."""
    from sqlalchemy import select

    from ccat_hpc.db.models import RawDataFile
    from ccat_hpc.db.session import transaction

    with transaction(app.sessions()) as session:
        rows = session.execute(
            select(RawDataFile.state, RawDataFile.failure_reason).where(
                RawDataFile.id.in_(file_ids)
            )
        ).all()
    counts = Counter(state.value for state, _ in rows)
    if not quiet:
        click.echo("files: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    bad = [(state, reason) for state, reason in rows if state in PROBLEM_STATES]
    for state, reason in bad[:SHOWN_PROBLEMS]:  # every reason starts with the file's path
        click.echo(f"  {state.value}: {one_line(reason or '')}", err=True)
    return len(bad)
