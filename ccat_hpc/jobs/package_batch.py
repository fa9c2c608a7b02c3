"""Plan and submit the package job array: new RDPs for ready files, then build them.

Planning (new PLANNED RDPs, files assigned) is one transaction; claiming the PLANNED
RDPs (→ BUILDING) and creating the batch is another, so two submissions at once never
build one RDP twice. RDPs given back by a dead task, or sent back after a failure that
a retry can help, are PLANNED again and go into the next batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import DataLocation, RawDataFile, RawDataPackage, Site
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import PackageState
from ccat_hpc.executors.base import Executor
from ccat_hpc.jobs.batches import create_batch, submit_batch
from ccat_hpc.jobs.tracking import track_unfinished
from ccat_hpc.pipeline import step_items
from ccat_hpc.pipeline.checksum import plan_tasks
from ccat_hpc.pipeline.package_task import PACKAGE_STATES
from ccat_hpc.pipeline.packaging import PlanConflict, max_package_bytes, plan_packages
from ccat_hpc.sites.schema import SlurmProfile


@dataclass(frozen=True)
class StepSubmission:
    batch_id: int
    item_ids: list[int]
    tasks: int
    #: items created by this submission's planning (e.g. new RDPs)
    planned: int = 0


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
        RawDataPackage.state == PackageState.PLANNED
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
    factory: sessionmaker[Session],
    executor: Executor,
    environment: Mapping[str, str],
    working_dir: Path,
    profile: SlurmProfile,
    site: str | None = None,
    bytes_per_task: int | None = None,
) -> StepSubmission | None:
    """Plan RDPs, claim every PLANNED one and submit one batch; None when none waits."""
    track_unfinished(factory, "package", executor)
    planned = plan_new_packages(factory, site)
    with transaction(factory) as session:
        waiting = packages_waiting(session, site)
        claimed = set(
            step_items.claim(session, RawDataPackage, [i for i, _ in waiting], PACKAGE_STATES)
        )
        if not claimed:
            return None
        per_task = bytes_per_task or max_package_bytes(session, site)
        tasks = plan_tasks([(i, s) for i, s in waiting if i in claimed], per_task)
        batch = create_batch(
            session,
            "package",
            tasks,
            executor=executor.name,
            profile=profile,
            working_dir=working_dir,
            site_name=site,
        )
        batch_id = batch.id
        step_items.assign(session, RawDataPackage, sorted(claimed), batch_id)
    submit_batch(factory, batch_id, executor, environment)
    return StepSubmission(batch_id, sorted(claimed), len(tasks), planned)
