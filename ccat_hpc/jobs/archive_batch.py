"""Submit the archive job array: every DTP that arrived at a site with an archive."""

from __future__ import annotations

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from ccat_hpc.db.models import DataLocation, DataTransferPackage, DataTransferRoute, Site
from ccat_hpc.db.states import LocationType, PackageState
from ccat_hpc.jobs.step_batches import JobSetup, StepSubmission, claim_and_submit
from ccat_hpc.jobs.tracking import track_unfinished
from ccat_hpc.pipeline import step_items
from ccat_hpc.pipeline.archive_task import ARCHIVE_STATES
from ccat_hpc.pipeline.endpoints import archive_endpoints, gated

#: a task archives DTPs up to this many bytes
BYTES_PER_TASK = 200 * 10**9


def archives_waiting(session: Session, site: str | None) -> list[tuple[int, int]]:
    """(id, size) of TRANSFERRED DTPs whose destination site has an active archive."""
    archive = aliased(DataLocation)
    has_archive = exists().where(
        archive.site_id == DataTransferRoute.destination_site_id,
        archive.location_type == LocationType.LONG_TERM_ARCHIVE,
        archive.active.is_(True),
    )
    query = (
        select(DataTransferPackage.id, DataTransferPackage.size)
        .join(DataTransferRoute, DataTransferRoute.id == DataTransferPackage.route_id)
        .where(
            DataTransferPackage.state == PackageState.TRANSFERRED,
            has_archive,
            step_items.ready_now(DataTransferPackage),
        )
    )
    if site is not None:
        query = query.join(
            Site, and_(Site.id == DataTransferRoute.destination_site_id, Site.name == site)
        )
    ordered = query.order_by(DataTransferPackage.priority, DataTransferPackage.id)
    return [(i, size) for i, size in session.execute(ordered)]


def submit_archive(
    factory: sessionmaker[Session], setup: JobSetup, bytes_per_task: int | None = None
) -> StepSubmission | None:
    """Claim every DTP ready for the archive (whose archive's breaker lets work through)
    and submit one batch; None when none waits."""
    track_unfinished(factory, "archive", setup.executor)
    submitted = claim_and_submit(
        factory,
        "archive",
        DataTransferPackage,
        ARCHIVE_STATES,
        lambda session: gated(
            session, archives_waiting(session, setup.site), archive_endpoints, setup.gate
        ),
        bytes_per_task or BYTES_PER_TASK,
        setup,
    )
    return None if submitted is None else StepSubmission(*submitted)
