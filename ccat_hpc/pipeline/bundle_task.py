"""The bundle step's task: build its DTPs (tars of RDPs) in the origin BUFFER.

Each RDP's file in the buffer becomes a member named by its path in the buffer
(``rdp/YYYY/MM/DD/NAME.tar``), checked against the RDP's checksum while it is read;
the DTP is written next to them under ``dtp/…`` and appears only when complete.

Outcomes, one transaction per DTP:
- built: DTP BUILT with size, checksum and member index, a VERIFIED copy at the buffer,
  its RDPs TRANSFERRING (they travel inside it);
- an RDP's copy in the buffer is not its checksum any more, or is gone (permanent for
  this DTP): that copy CORRUPT or MISSING, that RDP back to PLANNED to be built again
  from SOURCE, the DTP FAILED, and its other RDPs free to be bundled again;
- anything else (buffer full, unmounted): the DTP back to PLANNED for a rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataLocation,
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.db.states import PackageState
from ccat_hpc.db.transitions import move
from ccat_hpc.engine.api import build
from ccat_hpc.engine.build import BuildResult
from ccat_hpc.engine.layout import MemberSpec
from ccat_hpc.pipeline import copies, step_items
from ccat_hpc.pipeline.build_items import (
    BuildProblem,
    BuildStep,
    culprit,
    engine_build,
    new_counts,
    run_item,
)
from ccat_hpc.pipeline.placement import folder_storage
from ccat_hpc.pipeline.tasks import TaskContext
from ccat_hpc.storage.base import StorageError

BUNDLE_STATES = step_items.STEP_ITEMS["bundle"][1]


@dataclass(frozen=True)
class BundleJob:
    item_id: int
    name: str
    output: Path
    location_id: int
    copy_id: int
    specs: list[MemberSpec]
    package_ids: list[int]


def bundle_task(context: TaskContext) -> dict[str, Any]:
    """Build every DTP the task holds; one outcome per DTP."""
    step = BuildStep(
        DataTransferPackage,
        BUNDLE_STATES,
        "transfer package",
        prepare,
        _build,
        _packages_travel,
        _free_packages,
    )
    counts = new_counts()
    for dtp_id in context.items:
        context.stop.check()
        run_item(context, step, int(dtp_id), counts)
    return counts


def prepare(session: Session, dtp_id: int, batch_id: int) -> BundleJob | None:
    """What building the DTP needs; None when ``batch_id`` no longer holds it."""
    if not step_items.holds(session, DataTransferPackage, dtp_id, BUNDLE_STATES, batch_id):
        return None
    dtp = session.get_one(DataTransferPackage, dtp_id)
    if dtp.origin_location_id is None:
        raise BuildProblem(f"{dtp.name}: has no origin buffer", retryable=False)
    location = session.get_one(DataLocation, dtp.origin_location_id)
    packages = list(
        session.scalars(
            select(RawDataPackage)
            .where(RawDataPackage.data_transfer_package_id == dtp_id)
            .order_by(RawDataPackage.relative_path)
        )
    )
    if not packages:
        raise BuildProblem(f"{dtp.name}: holds no packages", retryable=False)
    try:
        storage = folder_storage(location)
        output = storage.local_path(dtp.relative_path, create_folders=True)
        specs = [_member(storage.local_path(p.relative_path), p) for p in packages]
    except StorageError as exc:
        raise BuildProblem(str(exc), retryable=True) from None
    copy_id = copies.pending_copy(session, DataTransferPackagePhysicalCopy, dtp_id, location.id)
    return BundleJob(
        dtp_id, dtp.name, output, location.id, copy_id, specs, [p.id for p in packages]
    )


def _member(path: Path, package: RawDataPackage) -> MemberSpec:
    return MemberSpec(
        name=package.relative_path,
        size=package.size,
        mtime_ns=0,
        mode=0o644,
        source=str(path),
        expected_xxh3_128=package.checksum,
    )


def _build(job: BundleJob) -> BuildResult:
    return engine_build(lambda: build(None, lambda: job.specs, job.output))


def _packages_travel(session: Session, job: BundleJob) -> None:
    move(session, RawDataPackage, job.package_ids, PackageState.BUILT, PackageState.TRANSFERRING)


def _free_packages(session: Session, job: BundleJob, reason: str) -> None:
    """The damaged RDP copy is marked and the RDP built again; the others bundle again."""
    package_id = culprit(job.specs, job.package_ids, reason)
    if package_id is not None:
        copy = copies.copy_at(session, RawDataPackagePhysicalCopy, package_id, job.location_id)
        state = copies.problem_state(reason)
        if copy is not None:
            copies.found_bad(session, copy.id, state, reason)
        move(
            session,
            RawDataPackage,
            [package_id],
            PackageState.BUILT,
            PackageState.PLANNED,
            failure_reason=f"its copy in the buffer is {state.value}: {reason}",
            failure_retryable=True,
        )
    session.execute(
        update(RawDataPackage)
        .where(RawDataPackage.data_transfer_package_id == job.item_id)
        .values(data_transfer_package_id=None)
        .execution_options(synchronize_session=False)
    )
