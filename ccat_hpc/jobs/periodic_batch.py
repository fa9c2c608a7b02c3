"""Submit the cleanup job: one task that deletes what retention lets go (see
:mod:`ccat_hpc.pipeline.cleanup`). Nothing is claimed: a second cleanup at the same
time finds the copies the first took already DELETION_PENDING or DELETED."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.session import transaction
from ccat_hpc.jobs.batches import create_batch, submit_batch
from ccat_hpc.jobs.step_batches import JobSetup, StepSubmission
from ccat_hpc.jobs.tracking import track_unfinished


def submit_cleanup(factory: sessionmaker[Session], setup: JobSetup) -> StepSubmission:
    """One cleanup task (for the setup's site, or every site)."""
    track_unfinished(factory, "cleanup", setup.executor)
    with transaction(factory) as session:
        batch = create_batch(
            session,
            "cleanup",
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
