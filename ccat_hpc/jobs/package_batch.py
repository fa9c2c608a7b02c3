"""Plan and submit the package job array: new RDPs for ready files, then build them.

Planning (new PLANNED RDPs, files assigned) is one transaction; claiming the PLANNED
RDPs (→ BUILDING) and creating the batch is another, so two submissions at once never
build one RDP twice. RDPs given back by a dead task, or sent back after a failure that
a retry can help, are PLANNED again and go into the next batch.
"""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import DataLocation, RawDataFile, RawDataPackage, Site
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import PackageState
from ccat_hpc.jobs.step_batches import JobSetup, StepSubmission, claim_and_submit
from ccat_hpc.jobs.tracking import track_unfinished
from ccat_hpc.pipeline import step_items
from ccat_hpc.pipeline.package_task import PACKAGE_STATES
from ccat_hpc.pipeline.packaging import PlanConflict, max_package_bytes, plan_packages


def plan_new_packages(factory: sessionmaker[Session], site: str | None) -> int:
    """Create RDPs for the files that are ready; how many (0 when another planner won)."""
    try:
        with transaction(factory) as session:
            return len(plan_packages(session, site, max_package_bytes(session, site)).package_ids)
    except (PlanConflict, IntegrityError):
        return 0


def packages_waiting(session: Session, site: str | None) -> list[tuple[int, int]]:
    """(id, size) of every PLANNED RDP (of files at ``site``), oldest first."""
    query = select(RawDataPackage.id, RawDataPackage.size).where(
        RawDataPackage.state == PackageState.PLANNED, step_items.ready_now(RawDataPackage)
    )
    if site is not None:
        first_file = (
            select(RawDataFile.source_location_id)
            .where(RawDataFile.raw_data_package_id == RawDataPackage.id)
            .limit(1)
            .scalar_subquery()
        )
        query = query.join(DataLocation, DataLocation.id == first_file).join(
            Site, and_(Site.id == DataLocation.site_id, Site.name == site)
        )
    return [(row[0], row[1]) for row in session.execute(query.order_by(RawDataPackage.id))]


def submit_package(
    factory: sessionmaker[Session], setup: JobSetup, bytes_per_task: int | None = None
) -> StepSubmission | None:
    """Plan RDPs, claim every PLANNED one and submit one batch; None when none waits."""
    track_unfinished(factory, "package", setup.executor)
    planned = plan_new_packages(factory, setup.site)
    if bytes_per_task is None:
        with transaction(factory) as session:
            bytes_per_task = max_package_bytes(session, setup.site)
    submitted = claim_and_submit(
        factory,
        "package",
        RawDataPackage,
        PACKAGE_STATES,
        lambda session: packages_waiting(session, setup.site),
        bytes_per_task,
        setup,
    )
    return None if submitted is None else StepSubmission(*submitted, planned=planned)
