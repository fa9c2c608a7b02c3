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
import errno
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DiskDataLocation,
    PhysicalCopy,
    RawDataFile,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import LocationType, PackageState, PhysicalCopyState, RawDataFileState
from ccat_hpc.db.transitions import move
from ccat_hpc.engine.api import build
from ccat_hpc.engine.build import BuildResult
from ccat_hpc.engine.errors import ChecksumMismatch, EngineError, SourceChanged
from ccat_hpc.engine.layout import MemberSpec
from ccat_hpc.logline import log_line
from ccat_hpc.pipeline import step_items
from ccat_hpc.pipeline.placement import best_location, folder_storage
from ccat_hpc.pipeline.tasks import TaskContext
from ccat_hpc.storage.base import StorageError

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm

PACKAGE_STATES = step_items.StepStates(
    PackageState.PLANNED, PackageState.BUILDING, PackageState.BUILT
)


@dataclass(frozen=True)
class BuildJob:
    package_id: int
    name: str
    output: Path
    buffer_id: int
    copy_id: int
    specs: list[MemberSpec]
    file_ids: list[int]


class BuildProblem(Exception):
    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.retryable = retryable


def package_task(context: TaskContext) -> dict[str, Any]:
    """Build every RDP the task holds; one outcome per RDP, recorded as soon as it is known."""
    from ccat_hpc.engine.mpi import world

    comm = world()
    counts = {"built": 0, "failed": 0, "retry": 0, "skipped": 0, "bytes": 0}
    try:
        for package_id in context.items:
            context.stop.check()
            _package_one(context, comm, int(package_id), counts)
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


def _package_one(
    context: TaskContext, comm: Intracomm | None, package_id: int, counts: dict[str, int]
) -> None:
    try:
        with transaction(context.factory) as session:
            job = prepare(session, package_id, context.batch_id)
    except BuildProblem as problem:
        _record_problem(context, package_id, None, problem, counts)
        return
    if job is None:
        counts["skipped"] += 1
        return
    started = time.monotonic()
    try:
        result = _build(comm, job)
    except BuildProblem as problem:
        _record_problem(context, package_id, job, problem, counts)
        return
    with transaction(context.factory) as session:
        recorded = record_built(session, job, result, context.batch_id)
    seconds = max(time.monotonic() - started, 1e-6)
    if recorded:
        counts["built"] += 1
        counts["bytes"] += result.size
        log_line(
            f"{job.name}: built in {job.output.parent}: {len(job.specs)} file(s), "
            f"{result.size} bytes, {result.size / seconds / 1e6:.0f} MB/s"
        )
    else:
        counts["skipped"] += 1


def prepare(session: Session, package_id: int, batch_id: int) -> BuildJob | None:
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
    buffer = best_location(session, source.site_id, LocationType.BUFFER)
    if buffer is None:
        raise BuildProblem(f"no active BUFFER at site {source.site.name}", retryable=True)
    try:
        output = folder_storage(buffer).local_path(package.relative_path, create_folders=True)
    except StorageError as exc:
        raise BuildProblem(str(exc), retryable=True) from None
    specs = [_member(session, item) for item in files]
    copy_id = pending_copy(session, package_id, buffer.id)
    return BuildJob(
        package_id, package.name, output, buffer.id, copy_id, specs, [f.id for f in files]
    )


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


def pending_copy(session: Session, package_id: int, location_id: int) -> int:
    """The RDP's copy row at the location, PENDING while it is written (reused on a rerun)."""
    copy = session.scalars(
        select(RawDataPackagePhysicalCopy).where(
            RawDataPackagePhysicalCopy.raw_data_package_id == package_id,
            RawDataPackagePhysicalCopy.data_location_id == location_id,
        )
    ).first()
    if copy is None:
        copy = RawDataPackagePhysicalCopy(
            raw_data_package_id=package_id,
            data_location_id=location_id,
            state=PhysicalCopyState.PENDING,
        )
        session.add(copy)
        session.flush()
    elif copy.state == PhysicalCopyState.FAILED:
        move(session, PhysicalCopy, [copy.id], copy.state, PhysicalCopyState.PENDING)
    return copy.id


def _build(comm: Intracomm | None, job: BuildJob) -> BuildResult:
    if comm is not None:
        comm.bcast(str(job.output), root=0)
    try:
        return build(comm, lambda: job.specs, job.output)
    except (SourceChanged, ChecksumMismatch) as exc:
        raise BuildProblem(str(exc), retryable=False) from None
    except EngineError as exc:
        raise BuildProblem(str(exc), retryable=True) from None


def record_built(session: Session, job: BuildJob, result: BuildResult, batch_id: int) -> bool:
    """RDP BUILT, its BUFFER copy VERIFIED, its files PACKAGED; False when no longer held."""
    done = step_items.finish(
        session,
        RawDataPackage,
        job.package_id,
        PACKAGE_STATES,
        batch_id,
        size=result.size,
        checksum=result.xxh3_128,
        member_index={"members": [entry.as_json() for entry in result.index.members]},
    )
    if not done:
        return False
    move(
        session,
        PhysicalCopy,
        [job.copy_id],
        PhysicalCopyState.PENDING,
        PhysicalCopyState.VERIFIED,
        verified_at=utcnow(),
        failure_reason=None,
    )
    move(
        session, RawDataFile, job.file_ids, RawDataFileState.CHECKSUMMED, RawDataFileState.PACKAGED
    )
    return True


def _record_problem(
    context: TaskContext,
    package_id: int,
    job: BuildJob | None,
    problem: BuildProblem,
    counts: dict[str, int],
) -> None:
    reason = str(problem)
    with transaction(context.factory) as session:
        held = step_items.fail(
            session,
            RawDataPackage,
            package_id,
            PACKAGE_STATES,
            context.batch_id,
            reason,
            retryable=problem.retryable,
        )
        if held and job is not None:
            _fail_copy(session, job.copy_id, reason)
            if not problem.retryable:
                _free_files(session, job, reason)
    counts["retry" if problem.retryable else "failed"] += 1
    log_line(
        f"package {package_id}: {'will be retried' if problem.retryable else 'failed'}: {reason}"
    )


def _fail_copy(session: Session, copy_id: int, reason: str) -> None:
    move(
        session,
        PhysicalCopy,
        [copy_id],
        PhysicalCopyState.PENDING,
        PhysicalCopyState.FAILED,
        failure_reason=reason,
    )


def _free_files(session: Session, job: BuildJob, reason: str) -> None:
    """The changed file is CORRUPT or MISSING; every file of the RDP is free for a new part."""
    file_id = _culprit(job, reason)
    if file_id is not None:
        state = RawDataFileState.MISSING if _vanished(reason) else RawDataFileState.CORRUPT
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
        .where(RawDataFile.raw_data_package_id == job.package_id)
        .values(raw_data_package_id=None)
        .execution_options(synchronize_session=False)
    )


def _culprit(job: BuildJob, reason: str) -> int | None:
    """The file whose source path the engine's message starts with."""
    matches = [
        (len(spec.source), file_id)
        for file_id, spec in zip(job.file_ids, job.specs, strict=True)
        if reason.startswith(spec.source + ":")
    ]
    return max(matches)[1] if matches else None


def _vanished(reason: str) -> bool:
    return "cannot open" in reason and (
        "No such file" in reason or errno.errorcode.get(errno.ENOENT, "") in reason
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
