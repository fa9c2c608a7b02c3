"""Submit the periodic jobs: one task each, nothing claimed.

``cleanup`` deletes what retention lets go (:mod:`ccat_hpc.pipeline.cleanup`): a second
cleanup at the same time finds the copies the first took already DELETION_PENDING or
DELETED. ``scrub`` reads a slice of each site's archive again
(:mod:`ccat_hpc.pipeline.scrub`): the slice is decided by the task from the day's
budget left.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.session import transaction
from ccat_hpc.jobs.batches import create_batch, submit_batch
from ccat_hpc.jobs.step_batches import JobSetup, StepSubmission
from ccat_hpc.jobs.tracking import track_unfinished


def submit_one_task(kind: str, factory: sessionmaker[Session], setup: JobSetup) -> StepSubmission:
    """One task of ``kind`` (for the setup's site, or every site)."""
    track_unfinished(factory, kind, setup.executor)
    with transaction(factory) as session:
        batch = create_batch(
            session,
            kind,
            [[]],
            executor=setup.executor.name,
            profile=setup.profile,
            working_dir=setup.working_dir,
            parameters={} if setup.site is None else {"site": setup.site},
            site_name=setup.site,
        )
        batch_id = int(batch.id)
    submit_batch(factory, batch_id, setup.executor, setup.environment)
    return StepSubmission(batch_id, [], 1)


def submit_cleanup(factory: sessionmaker[Session], setup: JobSetup) -> StepSubmission:
    return submit_one_task("cleanup", factory, setup)


def submit_scrub(factory: sessionmaker[Session], setup: JobSetup) -> StepSubmission:
    return submit_one_task("scrub", factory, setup)
