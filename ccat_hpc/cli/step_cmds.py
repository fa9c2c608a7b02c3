"""``ccat-hpc step NAME``: run one pipeline step as a job array (one shape for every step)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from ccat_hpc.cli.checksum_cmds import checksum
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
from ccat_hpc.text import one_line

SHOWN_PROBLEMS = 20


@click.group()
def step() -> None:
    """Run a pipeline step as one job array: checksum, package (then bundle, transfer,
    archive).

    Each step takes the items waiting for it in ops-db, claims them (a second run at
    the same time finds nothing to do), and records every item's outcome. With --wait
    the exit status is 1 when an item failed; the failed items are named.
    """


step.add_command(checksum, "checksum")


@step.command("package")
@click.option(
    "--bytes-per-task",
    type=click.IntRange(min=1),
    help="Bytes of packages per array task (default: the site's maximum package size).",
)
@EXECUTOR_OPTION
@WORKDIR_OPTION
@SITE_OPTION
@WAIT_OPTION
@output_options
@pass_app
def package(
    app: AppContext,
    bytes_per_task: int | None,
    executor: str,
    workdir: Path,
    site: str | None,
    wait: bool,
    output: str | None,
) -> None:
    """Package checksummed files into RawDataPackages in the site's BUFFER.

    The files of one execution and instrument module go into one tar (split into parts
    above the site's pipeline.max_package_bytes), built from SOURCE into the active
    BUFFER with the best priority; every byte is checked against the file's checksum
    while it is packaged. Under Slurm, a `package` profile with ntasks > 1 builds each
    package with that many MPI ranks.
    """
    from ccat_hpc.jobs.package_batch import submit_package

    submitted = submit_package(
        app.sessions(),
        make_named_executor(executor),
        task_environment(app),
        absolute_workdir(workdir),
        site_profile(app, site, "package"),
        site,
        bytes_per_task,
    )
    if submitted is None:
        _nothing_to_do(output, "package", "no checksummed file is waiting")
        return
    text = (
        f"batch {submitted.batch_id} submitted: {len(submitted.item_ids)} package(s) "
        f"({submitted.planned} new) in {submitted.tasks} task(s)"
    )
    data = {"packages": len(submitted.item_ids), "tasks": submitted.tasks, "executor": executor}
    echo_result(output, submitted.batch_id, text, data)
    if wait:
        quiet = output is not None
        succeeded = wait_and_report(app, submitted.batch_id, executor, quiet=quiet)
        problems = _report_packages(app, submitted.item_ids, quiet=quiet)
        if problems or not succeeded:
            sys.exit(1)


def _nothing_to_do(output: str | None, name: str, why: str) -> None:
    if output == "json":
        click.echo('{"batch": null, "tasks": 0}')
    elif output is None:
        click.echo(f"nothing to {name}: {why}")


def _report_packages(app: AppContext, package_ids: list[int], quiet: bool) -> int:
    """Print the outcome of the packages; return how many did not get built."""
    from sqlalchemy import select

    from ccat_hpc.db.models import RawDataPackage
    from ccat_hpc.db.session import transaction
    from ccat_hpc.db.states import PackageState

    with transaction(app.sessions()) as session:
        rows = session.execute(
            select(RawDataPackage.name, RawDataPackage.state, RawDataPackage.failure_reason).where(
                RawDataPackage.id.in_(package_ids)
            )
        ).all()
    counts = Counter(state.value for _, state, _ in rows)
    if not quiet:
        click.echo("packages: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    bad = [(name, state, why) for name, state, why in rows if state != PackageState.BUILT]
    for name, state, why in bad[:SHOWN_PROBLEMS]:
        click.echo(f"  {name}: {state.value}: {one_line(why or 'not built')}", err=True)
    return len(bad)
