"""Plan and submit the bundle job array: DTPs for the RDPs waiting in a buffer."""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import DataLocation, DataTransferPackage, Site
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import PackageState
from ccat_hpc.jobs.step_batches import JobSetup, StepSubmission, claim_and_submit
from ccat_hpc.jobs.tracking import track_unfinished
from ccat_hpc.pipeline import step_items
from ccat_hpc.pipeline.bundle_task import BUNDLE_STATES
from ccat_hpc.pipeline.bundling import BundleConflict, plan_transfer_packages

#: a task builds DTPs up to this many bytes
BYTES_PER_TASK = 200 * 10**9


def plan_new_bundles(factory: sessionmaker[Session], site: str | None) -> int:
    """Create DTPs for the RDPs ready to go; how many (0 when another planner won)."""
    try:
        with transaction(factory) as session:
            return len(plan_transfer_packages(session, site, utcnow()))
    except (BundleConflict, IntegrityError):
        return 0


def bundles_waiting(session: Session, site: str | None) -> list[tuple[int, int]]:
    """(id, size) of every PLANNED DTP (in a buffer at ``site``), oldest first."""
    query = select(DataTransferPackage.id, DataTransferPackage.size).where(
        DataTransferPackage.state == PackageState.PLANNED,
        step_items.ready_now(DataTransferPackage),
    )
    if site is not None:
        query = query.join(
            DataLocation, DataLocation.id == DataTransferPackage.origin_location_id
        ).join(Site, and_(Site.id == DataLocation.site_id, Site.name == site))
    return [(i, size) for i, size in session.execute(query.order_by(DataTransferPackage.id))]


def submit_bundle(
    factory: sessionmaker[Session], setup: JobSetup, bytes_per_task: int | None = None
) -> StepSubmission | None:
    """Plan DTPs, claim every PLANNED one and submit one batch; None when none waits."""
    track_unfinished(factory, "bundle", setup.executor)
    planned = plan_new_bundles(factory, setup.site)
    submitted = claim_and_submit(
        factory,
        "bundle",
        DataTransferPackage,
        BUNDLE_STATES,
        lambda session: bundles_waiting(session, setup.site),
        bytes_per_task or BYTES_PER_TASK,
        setup,
    )
    return None if submitted is None else StepSubmission(*submitted, planned=planned)
