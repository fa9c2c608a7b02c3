"""The package step's task: build its RDPs with the engine into the site's BUFFER.

For each RDP the task holds: the files' SOURCE paths become the members (named by
their path below the SOURCE root), each checked against the size and modification
time it was filed with and the checksum it was checksummed with *while* it is packaged
(the engine hashes every byte once), and the package goes to the active BUFFER of the
SOURCE's site with the best priority, under its final name only when complete. Under
an MPI launcher (``srun -n N``) all ranks build each package together; rank 0 reads
ops-db and records.

Outcomes, one transaction per RDP:
- built: RDP BUILT with its size, checksum and member index; a VERIFIED PhysicalCopy
  at the BUFFER; its files PACKAGED;
- a file changed or vanished since it was checksummed (permanent): that file CORRUPT or
  MISSING with the reason, the RDP FAILED with the reason, and its other files free for
  a new part at the next run (nothing of them is lost);
- anything else (buffer full or unmounted, no buffer): the RDP back to PLANNED with the
  reason, for a rerun.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DiskDataLocation,
    PhysicalCopy,
    RawDataFile,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.db.states import PhysicalCopyState, RawDataFileState
from ccat_hpc.db.transitions import move
from ccat_hpc.engine.api import build
from ccat_hpc.engine.build import BuildResult
from ccat_hpc.engine.errors import EngineError
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
from ccat_hpc.pipeline.placement import buffer_for_writing, folder_storage
from ccat_hpc.pipeline.tasks import TaskContext
from ccat_hpc.storage.base import StorageError

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm

PACKAGE_STATES = step_items.STEP_ITEMS["package"][1]


@dataclass(frozen=True)
class PackageJob:
    item_id: int
    name: str
    output: Path
    copy_id: int
    specs: list[MemberSpec]
    file_ids: list[int]


def package_task(context: TaskContext) -> dict[str, Any]:
    """Build every RDP the task holds; one outcome per RDP, recorded as soon as it is known."""
    from ccat_hpc.engine.mpi import world

    comm = world()
    step = package_step(comm)
    counts = new_counts()
    try:
        for package_id in context.items:
            context.stop.check()
            run_item(context, step, int(package_id), counts)
    finally:
        if comm is not None:
            comm.bcast(None, root=0)  # the other ranks stop waiting for packages
    return counts


def package_other_ranks(comm: Intracomm) -> None:
    """Ranks other than 0: build each package rank 0 announces, until it says stop."""
    while True:
        output = comm.bcast(None, root=0)
        if output is None:
            return
        with contextlib.suppress(EngineError):  # rank 0 records the failure
            build(comm, list, Path(output))


def package_step(comm: Intracomm | None) -> BuildStep[PackageJob]:
    def build_on_ranks(job: PackageJob) -> BuildResult:
        if comm is not None:
            comm.bcast(str(job.output), root=0)
        return engine_build(lambda: build(comm, lambda: job.specs, job.output))

    return BuildStep(
        RawDataPackage,
        PACKAGE_STATES,
        "package",
        prepare,
        build_on_ranks,
        _files_packaged,
        _free_files,
    )


def prepare(session: Session, package_id: int, batch_id: int) -> PackageJob | None:
    """What building the RDP needs; None when ``batch_id`` no longer holds it."""
    if not step_items.holds(session, RawDataPackage, package_id, PACKAGE_STATES, batch_id):
        return None
    package = session.get_one(RawDataPackage, package_id)
    files = list(
        session.scalars(
            select(RawDataFile)
            .where(RawDataFile.raw_data_package_id == package_id)
            .order_by(RawDataFile.relative_path)
        )
    )
    if not files:
        raise BuildProblem(f"{package.name}: has no files", retryable=False)
    source = session.get_one(DiskDataLocation, files[0].source_location_id)
    buffer = buffer_for_writing(session, source.site_id)
    if buffer is None:
        raise BuildProblem(
            f"no active BUFFER with room at site {source.site.name}", retryable=True, postpone=True
        )
    try:
        output = folder_storage(buffer).local_path(package.relative_path, create_folders=True)
    except StorageError as exc:
        raise BuildProblem(str(exc), retryable=True) from None
    specs = [_member(session, item) for item in files]
    copy_id = copies.pending_copy(session, RawDataPackagePhysicalCopy, package_id, buffer.id)
    return PackageJob(package_id, package.name, output, copy_id, specs, [f.id for f in files])


def _member(session: Session, item: RawDataFile) -> MemberSpec:
    root = Path(session.get_one(DiskDataLocation, item.source_location_id).path)
    return MemberSpec(
        name=item.relative_path,
        size=item.size,
        mtime_ns=item.source_mtime_ns or 0,
        mode=0o644,
        source=str(root / item.relative_path),
        expected_xxh3_128=item.checksum,
    )


def _files_packaged(session: Session, job: PackageJob) -> None:
    move(
        session, RawDataFile, job.file_ids, RawDataFileState.CHECKSUMMED, RawDataFileState.PACKAGED
    )


def _free_files(session: Session, job: PackageJob, reason: str) -> None:
    """The changed file is CORRUPT or MISSING; every file of the RDP is free for a new part.

    Files of an RDP built before (and being built again: its buffer copy was damaged)
    are PACKAGED: they are CHECKSUMMED again first, as they are in no package now.
    """
    move(
        session, RawDataFile, job.file_ids, RawDataFileState.PACKAGED, RawDataFileState.CHECKSUMMED
    )
    file_id = culprit(job.specs, job.file_ids, reason)
    if file_id is not None:
        state = RawDataFileState.MISSING if copies.vanished(reason) else RawDataFileState.CORRUPT
        move(
            session,
            RawDataFile,
            [file_id],
            RawDataFileState.CHECKSUMMED,
            state,
            failure_reason=f"packaging {job.name}: {reason}",
        )
        _mark_source_copy(session, file_id, state, reason)
    session.execute(
        update(RawDataFile)
        .where(RawDataFile.raw_data_package_id == job.item_id)
        .values(raw_data_package_id=None)
        .execution_options(synchronize_session=False)
    )


def _mark_source_copy(session: Session, file_id: int, state: RawDataFileState, reason: str) -> None:
    copy_state = (
        PhysicalCopyState.MISSING
        if state == RawDataFileState.MISSING
        else PhysicalCopyState.CORRUPT
    )
    copy_ids = list(
        session.scalars(
            select(RawDataFilePhysicalCopy.id).where(
                RawDataFilePhysicalCopy.raw_data_file_id == file_id,
                RawDataFilePhysicalCopy.state == PhysicalCopyState.VERIFIED,
            )
        )
    )
    move(
        session,
        PhysicalCopy,
        copy_ids,
        PhysicalCopyState.VERIFIED,
        copy_state,
        failure_reason=reason,
    )
