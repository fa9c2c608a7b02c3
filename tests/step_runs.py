"""Running a pipeline step's task here, as `job run` would, on items claimed the way the
step's submission claims them (:func:`ccat_hpc.jobs.step_batches.claim_batch`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.session import transaction
from ccat_hpc.jobs.kinds import job_kinds
from ccat_hpc.jobs.runner import run_task
from ccat_hpc.jobs.step_batches import claim_batch
from ccat_hpc.pipeline.step_items import STEP_ITEMS
from ccat_hpc.sites.schema import SlurmProfile

#: every claimed item in one task
ONE_TASK = 10**18


def claim(
    factory: sessionmaker[Session],
    step: str,
    waiting: Callable[[Session, str | None], list[tuple[int, int]]],
    working_dir: Path,
    *,
    site: str | None = None,
) -> tuple[int, list[int]] | None:
    """(batch id, items) of a new one-task batch of ``step``, or None when none waits."""
    model, states = STEP_ITEMS[step]
    with transaction(factory) as session:
        claimed = claim_batch(
            session,
            step,
            model,
            states,
            waiting(session, None),
            ONE_TASK,
            executor="local",
            profile=SlurmProfile(),
            working_dir=working_dir,
            site=site,
        )
    return None if claimed is None else (claimed[0], claimed[1])


def run_claimed(
    factory: sessionmaker[Session],
    step: str,
    batch_id: int,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Run the batch's task 0 here; it must end with exit status 0."""
    handler = job_kinds()[step].handler
    assert run_task(factory, step, batch_id, 0, {step: handler}, dict(environ or {})) == 0


def run_step(
    factory: sessionmaker[Session],
    step: str,
    waiting: Callable[[Session, str | None], list[tuple[int, int]]],
    working_dir: Path,
    environ: Mapping[str, str] | None = None,
    *,
    site: str | None = None,
) -> tuple[int, list[int]] | None:
    """Claim and run one batch of ``step``; (batch id, items) or None when none waits."""
    claimed = claim(factory, step, waiting, working_dir, site=site)
    if claimed is not None:
        run_claimed(factory, step, claimed[0], environ)
    return claimed


def run_dying_task(factory: sessionmaker[Session], script: str, batch_id: int) -> None:
    """Run ``script`` (a task that dies with exit status 9 part-way) in its own process,
    given the ops-db URL and the batch id as its arguments."""
    url = factory.kw["bind"].url.render_as_string(hide_password=False)
    repo = Path(__file__).resolve().parents[1]
    died = subprocess.run(
        [sys.executable, "-c", script, url, str(batch_id)],
        env=dict(os.environ, PYTHONPATH=str(repo)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert died.returncode == 9, died.stderr
