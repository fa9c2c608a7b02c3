"""Claim the staging requests that wait and submit them as one stage job array.

Claiming (PENDING or RETRY_WAIT past its backoff → SUBMITTED, the batch named on each)
and creating the batch happen in one transaction, as for the pipeline steps: two
schedulers never stage one request twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import DataLocation, Site, StagingJob
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import StagingJobState
from ccat_hpc.db.transitions import move
from ccat_hpc.jobs.batches import create_batch, submit_batch
from ccat_hpc.jobs.step_batches import JobSetup, StepSubmission
from ccat_hpc.jobs.tracking import track_unfinished
from ccat_hpc.pipeline.checksum import plan_tasks
from ccat_hpc.pipeline.staging_request import after_a_failed_try
from ccat_hpc.pipeline.step_items import retry_policy

S = StagingJobState
#: a task stages requests up to this many bytes
BYTES_PER_TASK = 100 * 10**9


def ready_condition() -> Any:
    return or_(
        StagingJob.state == S.PENDING,
        (StagingJob.state == S.RETRY_WAIT)
        & (StagingJob.retry_after.is_(None) | (StagingJob.retry_after <= utcnow())),
    )


def stagings_waiting(session: Session, site: str | None) -> list[tuple[int, int]]:
    """(id, bytes) of the requests ready to stage (at ``site``'s locations), oldest first."""
    query = select(StagingJob.id, StagingJob.total_bytes).where(ready_condition())
    if site is not None:
        query = (
            query.join(DataLocation, DataLocation.id == StagingJob.destination_location_id)
            .join(Site, Site.id == DataLocation.site_id)
            .where(Site.name == site)
        )
    return [(i, size) for i, size in session.execute(query.order_by(StagingJob.id))]


def claim_stagings(
    session: Session, setup: JobSetup, bytes_per_task: int | None = None
) -> tuple[int, list[int], int] | None:
    """Claim the requests ready to stage into one new batch (the caller commits):
    (batch, requests, tasks), or None when none waits."""
    waiting = stagings_waiting(session, setup.site)
    claimed = set(
        move(session, StagingJob, [i for i, _ in waiting], (S.PENDING, S.RETRY_WAIT), S.SUBMITTED)
    )
    if not claimed:
        return None
    tasks = plan_tasks(
        [(i, n) for i, n in waiting if i in claimed], bytes_per_task or BYTES_PER_TASK
    )
    batch = create_batch(
        session,
        "stage",
        tasks,
        executor=setup.executor.name,
        profile=setup.profile,
        working_dir=setup.working_dir,
        site_name=setup.site,
    )
    session.execute(
        update(StagingJob)
        .where(StagingJob.id.in_(sorted(claimed)))
        .values(claimed_by_batch_id=batch.id)
    )
    return int(batch.id), sorted(claimed), len(tasks)


def submit_stage(
    factory: sessionmaker[Session], setup: JobSetup, bytes_per_task: int | None = None
) -> StepSubmission | None:
    """Claim every request ready to stage and submit one batch; None when none waits."""
    track_unfinished(factory, "stage", setup.executor)
    with transaction(factory) as session:
        claimed = claim_stagings(session, setup, bytes_per_task)
    if claimed is None:
        return None
    submit_batch(factory, claimed[0], setup.executor, setup.environment)
    return StepSubmission(*claimed)


def release_stagings(session: Session, items: Sequence[Any], batch_id: int) -> int:
    """Give back the requests of a task that ended without their outcome (killed, or a
    bug): the try counts, and they wait out the backoff, so a request that kills every
    task it is in ends FAILED instead of being submitted for ever."""
    policy, _ = retry_policy(session, batch_id)
    given = 0
    for staging_id in (int(i) for i in items):
        job = session.get(StagingJob, staging_id)
        if job is None or job.claimed_by_batch_id != batch_id:
            continue
        new, tries, retry_after = after_a_failed_try(policy, job.attempts, True, utcnow())
        given += len(
            move(
                session,
                StagingJob,
                [staging_id],
                (S.SUBMITTED, S.STAGING),
                new,
                only=[StagingJob.claimed_by_batch_id == batch_id],
                claimed_by_batch_id=None,
                attempts=tries,
                retry_after=retry_after,
                failure_reason=f"its task ended without an outcome (try {tries})",
            )
        )
    return given
