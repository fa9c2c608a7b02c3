"""``ccat-hpc step NAME``: run one pipeline step as a job array (one shape for every step)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
    """Run a pipeline step as one job array: checksum, package, bundle, transfer, archive.

    Each step takes the items waiting for it in ops-db, claims them (a second run at
    the same time finds nothing to do), and records every item's outcome. With --wait
    the exit status is 1 when an item failed; the failed items are named.
    """


step.add_command(checksum, "checksum")

F = TypeVar("F", bound=Callable[..., Any])

RETRY_NOW_OPTION = click.option(
    "--retry-now",
    is_flag=True,
    help="First give the step's failed items back at once: no backoff, no operator hold.",
)


def step_options(command: F) -> F:
    """The options every step takes: --executor, --workdir, --site, --wait, --json."""
    wrapped: Any = command
    for decorator in (pass_app, output_options, WAIT_OPTION, SITE_OPTION, WORKDIR_OPTION):
        wrapped = decorator(wrapped)
    return EXECUTOR_OPTION(wrapped)  # type: ignore[no-any-return]


def _setup(app: AppContext, executor: str, workdir: Path, site: str | None, kind: str) -> Any:
    from ccat_hpc.jobs.step_batches import JobSetup

    return JobSetup(
        make_named_executor(executor),
        task_environment(app),
        absolute_workdir(workdir),
        site_profile(app, site, kind),
        site,
    )


def _finish(
    app: AppContext,
    submitted: Any,
    noun: str,
    executor: str,
    wait: bool,
    output: str | None,
    model: Any,
    done_states: tuple[Any, ...],
) -> None:
    """Print what was submitted; with --wait, wait and name every item that failed."""
    items = len(submitted.item_ids)
    text = (
        f"batch {submitted.batch_id} submitted: {items} {noun}(s) "
        f"({submitted.planned} new) in {submitted.tasks} task(s)"
    )
    data = {noun.replace(" ", "_") + "s": items, "tasks": submitted.tasks, "executor": executor}
    echo_result(output, submitted.batch_id, text, data)
    if wait:
        quiet = output is not None
        succeeded = wait_and_report(app, submitted.batch_id, executor, quiet=quiet)
        problems = _report_items(app, model, submitted.item_ids, done_states, noun, quiet)
        if problems or not succeeded:
            sys.exit(1)


@step.command("package")
@click.option(
    "--bytes-per-task",
    type=click.IntRange(min=1),
    help="Bytes of packages per array task (default: the site's maximum package size).",
)
@RETRY_NOW_OPTION
@step_options
def package(
    app: AppContext,
    bytes_per_task: int | None,
    retry_now: bool,
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
    from ccat_hpc.db.models import RawDataPackage
    from ccat_hpc.db.states import PackageState
    from ccat_hpc.jobs.package_batch import submit_package

    if retry_now:
        _retry_now(app, "package", output)
    setup = _setup(app, executor, workdir, site, "package")
    submitted = submit_package(app.sessions(), setup, bytes_per_task)
    if submitted is None:
        _nothing_to_do(output, "package", "no checksummed file is waiting")
        return
    done = at_or_after(PackageState.BUILT)
    _finish(app, submitted, "package", executor, wait, output, RawDataPackage, done)


@dataclass(frozen=True)
class TransferPackageStep:
    """A step whose items are DataTransferPackages: what it is called and says."""

    name: str
    done: str  # the PackageState an item reaches
    idle: str  # why there is nothing to do
    help: str


TRANSFER_PACKAGE_STEPS = (
    TransferPackageStep(
        "bundle",
        "built",
        "no package is ready to go (or none waited long enough)",
        """Bundle the RDPs waiting in a BUFFER into DataTransferPackages for their route.

        RDPs of one buffer and route, oldest first, fill a DTP up to the site's
        pipeline.bundle_target_bytes; the rest waits for more, unless its oldest RDP has
        waited pipeline.bundle_max_wait_minutes. Every RDP is checked against its
        checksum while it is bundled.
        """,
    ),
    TransferPackageStep(
        "transfer",
        "transferred",
        "no transfer package is ready to go",
        """Move built DataTransferPackages along their route to the destination BUFFER.

        Hop by hop (a relay route has two), with the route's method (copy, rsync, bbcp):
        each copy is verified at the destination (structure, every member, checksum)
        before it gets its final name; a DTP that does not arrive goes back to wait, with
        the reason. Every hop is a DataTransfer with its log file.
        """,
    ),
    TransferPackageStep(
        "archive",
        "archived",
        "no transfer package has arrived at an archive site",
        """Archive the RDPs of every DataTransferPackage that arrived at an archive site.

        The DTP is verified in the destination BUFFER (one that fails goes back to be
        transferred again), unpacked by byte ranges, every RDP verified, uploaded to the
        site's LONG_TERM_ARCHIVE (on S3 every part checked by the server, the object
        checked after) and recorded with its archive copy and ObsCore metadata.
        """,
    ),
)


def _transfer_package_command(definition: TransferPackageStep) -> click.Command:
    def run(
        app: AppContext,
        retry_now: bool,
        executor: str,
        workdir: Path,
        site: str | None,
        wait: bool,
        output: str | None,
    ) -> None:
        from ccat_hpc.db.models import DataTransferPackage
        from ccat_hpc.db.states import PackageState

        if retry_now:
            _retry_now(app, definition.name, output)
        from ccat_hpc.scheduler.loop import submitter

        submit = submitter(definition.name)
        setup = _setup(app, executor, workdir, site, definition.name)
        submitted = submit(app.sessions(), setup)
        if submitted is None:
            _nothing_to_do(output, definition.name, definition.idle)
            return
        done = at_or_after(PackageState(definition.done))
        _finish(
            app, submitted, "transfer package", executor, wait, output, DataTransferPackage, done
        )

    run.__doc__ = definition.help
    return click.command(definition.name)(RETRY_NOW_OPTION(step_options(run)))


for _definition in TRANSFER_PACKAGE_STEPS:
    step.add_command(_transfer_package_command(_definition))


def at_or_after(state: Any) -> tuple[Any, ...]:
    """``state`` and the states after it on the way to the archive (done for this step,
    even when a later step ran meanwhile)."""
    from ccat_hpc.db.states import PackageState

    order = [
        PackageState.BUILT,
        PackageState.TRANSFERRING,
        PackageState.TRANSFERRED,
        PackageState.ARCHIVING,
        PackageState.ARCHIVED,
    ]
    return tuple(order[order.index(state) :])


def _retry_now(app: AppContext, step_name: str, output: str | None) -> None:
    """An operator says "try again now" (after fixing what the reasons said)."""
    from ccat_hpc.db.session import transaction
    from ccat_hpc.pipeline import step_items

    model, states = step_items.STEP_ITEMS[step_name]
    with transaction(app.sessions()) as session:
        count = step_items.retry_now(session, model, states)
    if output is None:
        click.echo(f"{count} failed item(s) given back to {step_name} now")


def _nothing_to_do(output: str | None, name: str, why: str) -> None:
    if output == "json":
        click.echo('{"batch": null, "tasks": 0}')
    elif output is None:
        click.echo(f"nothing to {name}: {why}")


def _report_items(
    app: AppContext,
    model: Any,
    item_ids: list[int],
    done_states: tuple[Any, ...],
    noun: str,
    quiet: bool,
) -> int:
    """Print the items' outcomes; return how many did not get done (named on stderr)."""
    from sqlalchemy import select

    from ccat_hpc.db.session import transaction

    with transaction(app.sessions()) as session:
        rows = session.execute(
            select(model.name, model.state, model.failure_reason).where(model.id.in_(item_ids))
        ).all()
    counts = Counter(state.value for _, state, _ in rows)
    if not quiet:
        click.echo(f"{noun}s: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    bad = [(name, state, why) for name, state, why in rows if state not in done_states]
    for name, state, why in bad[:SHOWN_PROBLEMS]:
        click.echo(f"  {name}: {state.value}: {one_line(why or 'not done')}", err=True)
    return len(bad)
