"""``ccat-hpc scheduler run``: the loop that runs the pipeline steps by itself."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.job_support import (
    EXECUTOR_OPTION,
    SITE_OPTION,
    WORKDIR_OPTION,
    absolute_workdir,
    make_named_executor,
    site_profile,
    task_environment,
)
from ccat_hpc.cli.params import SECONDS

STEP_NAMES = ["checksum", "package", "bundle", "transfer", "archive", "stage", "cleanup"]


@click.group()
def scheduler() -> None:
    """The scheduler loop: it submits the pipeline steps for whatever is ready."""


@scheduler.command("run")
@click.option("--once", is_flag=True, help="One pass, then exit (for cron and tests).")
@click.option("--dry-run", is_flag=True, help="Print what a pass would do; change nothing.")
@click.option(
    "--until-idle",
    is_flag=True,
    help="Stop after a pass with nothing to follow or submit (batch runs, the demo).",
)
@click.option(
    "--interval",
    type=SECONDS,
    default=30.0,
    show_default=True,
    help="Seconds between the starts of two passes.",
)
@click.option(
    "--step",
    "steps",
    multiple=True,
    type=click.Choice(STEP_NAMES),
    help="Only these steps (repeatable; default: all), e.g. the Chile steps at Chile.",
)
@EXECUTOR_OPTION
@WORKDIR_OPTION
@SITE_OPTION
@pass_app
def run(
    app: AppContext,
    once: bool,
    dry_run: bool,
    until_idle: bool,
    interval: float,
    steps: tuple[str, ...],
    executor: str,
    workdir: Path,
    site: str | None,
) -> None:
    """Follow the running batches and submit every step that has items waiting.

    Each pass follows the batches that have not ended (tasks that died give their items
    back), then submits one job array per step with items waiting and no batch of its
    own running, in pipeline order. Items are claimed in ops-db by the submission, so
    two schedulers never submit one item twice. SIGTERM (or Ctrl-C) ends the loop after
    the pass at hand.
    """
    from ccat_hpc.jobs.step_batches import JobSetup
    from ccat_hpc.metrics import sink_from_env
    from ccat_hpc.scheduler.loop import breaker_policy
    from ccat_hpc.scheduler.loop import run as run_loop

    jobs = absolute_workdir(workdir)
    environment = task_environment(app)
    the_executor = make_named_executor(executor)

    def setup_for(step: str) -> JobSetup:
        return JobSetup(the_executor, environment, jobs, site_profile(app, site, step), site)

    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    metrics = sink_from_env(os.environ)
    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        run_loop(
            app.sessions(),
            setup_for,
            interval=interval,
            once=once,
            dry_run=dry_run,
            stop=stop,
            steps=steps or STEP_NAMES,
            policy=breaker_policy(app.sessions(), site),
            metrics=metrics,
            until_idle=until_idle,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        metrics.close()
