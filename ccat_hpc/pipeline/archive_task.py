"""The archive step's task: at the destination BUFFER, verify each DTP it holds, unpack
its RDPs, verify each one, and upload each into the LONG_TERM_ARCHIVE.

For one DTP:
1. the DTP copy in the buffer is verified whole (structure, every member, checksum); a
   copy that fails is marked CORRUPT (or MISSING) and the DTP goes back to BUILT with
   the reason: the transfer step sends it again from the copy it came from;
2. its RDPs not yet unpacked here are extracted by byte ranges through the index
   (verified as they are written) and each RDP is verified whole; its copy in the
   buffer is recorded VERIFIED and the RDP is TRANSFERRED;
3. each RDP not yet archived is streamed into the archive's storage with its checksum
   (on S3: every part checked by the server, the object checked after the upload) as
   one LongTermArchiveTransfer; then its archive copy is VERIFIED, it and its files are
   ARCHIVED, and its ObsCore metadata row is written;
4. when every RDP is archived, the DTP is ARCHIVED.
A storage failure ends the DTP's turn: the RDP and the DTP go back to TRANSFERRED with
the reason, what was archived stays archived, and a rerun goes on from there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataLocation,
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    DataTransferRoute,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import (
    LocationType,
    PackageState,
    PhysicalCopyState,
    TransferState,
)
from ccat_hpc.db.transitions import move
from ccat_hpc.engine.api import verify
from ccat_hpc.engine.errors import EngineError, PackageCorrupt
from ccat_hpc.engine.extract import extract_members
from ccat_hpc.engine.reader import LocalFile, read_index
from ccat_hpc.engine.verify import PackageVerifier
from ccat_hpc.logline import log_line
from ccat_hpc.pipeline import archive_records as records
from ccat_hpc.pipeline import copies, failures, step_items
from ccat_hpc.pipeline.placement import best_location, folder_storage, storage_for
from ccat_hpc.pipeline.tasks import TaskContext
from ccat_hpc.storage.base import StorageBackend, StorageError

ARCHIVE_STATES = step_items.STEP_ITEMS["archive"][1]
P = PackageState
T = TransferState
READ_PIECE = 8 * 1024 * 1024
#: a DTP copy verified this recently (by the transfer step, on arrival) is not read again
REVERIFY_AFTER = timedelta(hours=1)


class ArchiveProblem(Exception):
    def __init__(self, reason: str, *, retransfer: bool = False, retryable: bool = True) -> None:
        super().__init__(reason)
        self.retransfer = retransfer
        #: whether trying again can help (an archive that refuses access cannot)
        self.retryable = retryable


@dataclass(frozen=True)
class ArchiveJob:
    dtp_id: int
    name: str
    checksum: str
    dtp_path: Path
    dtp_copy_id: int
    #: when the DTP copy in the buffer was last verified
    verified_at: datetime | None
    buffer_id: int
    buffer_name: str
    buffer_root: Path
    archive_id: int
    archive_name: str
    archive: StorageBackend


def archive_task(context: TaskContext) -> dict[str, Any]:
    """Archive every DTP the task holds; one outcome per DTP, one per RDP."""
    counts = {"archived": 0, "packages": 0, "retransfer": 0, "retry": 0, "skipped": 0, "bytes": 0}
    for dtp_id in context.items:
        context.stop.check()
        _archive_one(context, int(dtp_id), counts)
    return counts


def _archive_one(context: TaskContext, dtp_id: int, counts: dict[str, int]) -> None:
    try:
        with transaction(context.factory) as session:
            job = prepare(session, dtp_id, context.batch_id, context.environ)
        if job is None:
            counts["skipped"] += 1
            return
        _check_transfer_package(context, job)
        _unpack(context, job)
        for package_id in _waiting_packages(context, dtp_id):
            context.stop.check()
            counts["bytes"] += _archive_package(context, job, package_id)
            counts["packages"] += 1
    except ArchiveProblem as problem:
        _give_back(context, dtp_id, problem, counts)
        return
    with transaction(context.factory) as session:
        done = step_items.finish(
            session, DataTransferPackage, dtp_id, ARCHIVE_STATES, context.batch_id
        )
    counts["archived" if done else "skipped"] += 1


def prepare(
    session: Session, dtp_id: int, batch_id: int, environ: Mapping[str, str]
) -> ArchiveJob | None:
    if not step_items.holds(session, DataTransferPackage, dtp_id, ARCHIVE_STATES, batch_id):
        return None
    dtp = session.get_one(DataTransferPackage, dtp_id)
    route = session.get_one(DataTransferRoute, dtp.route_id)
    copy = session.scalars(
        select(DataTransferPackagePhysicalCopy)
        .join(DataLocation, DataLocation.id == DataTransferPackagePhysicalCopy.data_location_id)
        .where(
            DataTransferPackagePhysicalCopy.data_transfer_package_id == dtp_id,
            DataTransferPackagePhysicalCopy.state == PhysicalCopyState.VERIFIED,
            DataLocation.site_id == route.destination_site_id,
        )
    ).first()
    if copy is None:
        raise ArchiveProblem(f"{dtp.name}: no verified copy at its destination", retransfer=True)
    archive = best_location(session, route.destination_site_id, LocationType.LONG_TERM_ARCHIVE)
    if archive is None:
        raise ArchiveProblem(f"no active LONG_TERM_ARCHIVE at site {route.destination_site.name}")
    buffer = copy.data_location
    try:
        storage = folder_storage(buffer)
        path = storage.local_path(dtp.relative_path)
        archive_storage = storage_for(archive, environ)
    except StorageError as exc:
        raise ArchiveProblem(str(exc)) from None
    records.forget_unfinished_uploads(session, dtp_id)
    return ArchiveJob(
        dtp_id=dtp_id,
        name=dtp.name,
        checksum=dtp.checksum or "",
        dtp_path=path,
        dtp_copy_id=copy.id,
        verified_at=copy.verified_at,
        buffer_id=buffer.id,
        buffer_name=buffer.name,
        buffer_root=storage.root,
        archive_id=archive.id,
        archive_name=archive.name,
        archive=archive_storage,
    )


def _check_transfer_package(context: TaskContext, job: ArchiveJob) -> None:
    """The whole DTP verified (and the time recorded), unless it was verified moments ago
    (on arrival); its RDPs' checksums are checked again as they are unpacked anyway."""
    if job.verified_at is not None and utcnow() - job.verified_at < REVERIFY_AFTER:
        return
    try:
        verify(None, job.dtp_path, job.checksum)
    except PackageCorrupt as exc:
        raise ArchiveProblem(
            f"{job.name}: its copy at {job.buffer_name} does not verify: {exc}", retransfer=True
        ) from None
    except EngineError as exc:
        raise ArchiveProblem(f"{job.name}: its copy cannot be read: {exc}") from None
    with transaction(context.factory) as session:
        copies.verified(session, job.dtp_copy_id)


def _unpack(context: TaskContext, job: ArchiveJob) -> None:
    """Extract the RDPs not unpacked here yet (or found damaged since); each is checked
    against its checksum as it is written, and its buffer copy recorded VERIFIED."""
    with transaction(context.factory) as session:
        pending = [
            (p.id, p.relative_path, p.state)
            for p in session.scalars(
                select(RawDataPackage)
                .where(
                    RawDataPackage.data_transfer_package_id == job.dtp_id,
                    RawDataPackage.state.in_((P.TRANSFERRING, P.TRANSFERRED)),
                )
                .order_by(RawDataPackage.id)
            )
            if p.state == P.TRANSFERRING or not _verified_at(session, p.id, job.buffer_id)
        ]
    if not pending:
        return
    source = LocalFile(job.dtp_path)
    try:
        extract_members(source, [name for _, name, _ in pending], job.buffer_root)
    except PackageCorrupt as exc:  # a member is not its RDP: the DTP copy is damaged
        raise ArchiveProblem(
            f"{job.name}: its copy at {job.buffer_name} does not verify: {exc}", retransfer=True
        ) from None
    except EngineError as exc:
        raise ArchiveProblem(f"{job.name}: unpacking at {job.buffer_name}: {exc}") from None
    finally:
        source.close()
    with transaction(context.factory) as session:
        for package_id, _, _ in pending:
            copy_id = copies.pending_copy(
                session, RawDataPackagePhysicalCopy, package_id, job.buffer_id
            )
            copies.verified(session, copy_id)
        move(session, RawDataPackage, [i for i, _, _ in pending], P.TRANSFERRING, P.TRANSFERRED)
    log_line(f"{job.name}: unpacked and verified {len(pending)} package(s) at {job.buffer_name}")


def _verified_at(session: Session, package_id: int, location_id: int) -> bool:
    copy = copies.copy_at(session, RawDataPackagePhysicalCopy, package_id, location_id)
    return copy is not None and copy.state == PhysicalCopyState.VERIFIED


def _waiting_packages(context: TaskContext, dtp_id: int) -> list[int]:
    with transaction(context.factory) as session:
        return list(
            session.scalars(
                select(RawDataPackage.id)
                .where(
                    RawDataPackage.data_transfer_package_id == dtp_id,
                    RawDataPackage.state == P.TRANSFERRED,
                )
                .order_by(RawDataPackage.id)
            )
        )


def _archive_package(context: TaskContext, job: ArchiveJob, package_id: int) -> int:
    """Upload one RDP and record it; its size. ArchiveProblem when the store failed."""
    with transaction(context.factory) as session:
        package = session.get_one(RawDataPackage, package_id)
        key, checksum, size, name = (
            package.relative_path,
            package.checksum or "",
            package.size,
            package.name,
        )
        move(session, RawDataPackage, [package_id], P.TRANSFERRED, P.ARCHIVING)
        transfer_id = records.start_upload(
            session, package_id, job.buffer_id, job.archive_id, context.batch_id
        )
        copy_id = copies.pending_copy(
            session, RawDataPackagePhysicalCopy, package_id, job.archive_id
        )
    started = time.monotonic()
    try:
        stored = job.archive.write(
            key, _verified_pieces(job.buffer_root / key, checksum), checksum=checksum, size=size
        )
        _recheck(job.archive, key, checksum, size)
    except EngineError as exc:
        reason = f"{name}: its copy at {job.buffer_name} does not verify: {exc}"
        with transaction(context.factory) as session:
            records.record_damaged_copy(
                session, package_id, transfer_id, copy_id, job.buffer_id, reason
            )
        raise ArchiveProblem(reason) from None
    except (StorageError, OSError) as exc:
        reason = f"{name}: upload to {job.archive_name} failed: {exc}"
        retryable = failures.retryable(exc)
        with transaction(context.factory) as session:
            records.record_upload_failure(
                session, package_id, transfer_id, copy_id, reason, retryable
            )
        raise ArchiveProblem(reason, retryable=retryable) from None
    seconds = max(time.monotonic() - started, 1e-6)
    with transaction(context.factory) as session:
        records.record_archived(
            session,
            package_id,
            transfer_id,
            copy_id,
            stored.size,
            seconds,
            job.archive.describe(),
            {"transfer_package": job.name, "archive_location": job.archive_name},
        )
    log_line(
        f"{name}: archived in {job.archive_name} ({size} bytes, {size / seconds / 1e6:.0f} MB/s)"
    )
    return size


def _verified_pieces(path: Path, checksum: str) -> Iterator[bytes]:
    """The RDP's bytes for the upload, verified as they go by: its structure, every
    member, the whole checksum. A damaged RDP raises PackageCorrupt before the store
    sees the end of it, so the store publishes nothing."""
    source = LocalFile(path)
    try:
        verifier = PackageVerifier(read_index(source), source.size())
    finally:
        source.close()
    with path.open("rb") as handle:
        while piece := handle.read(READ_PIECE):
            verifier.consume(piece)
            yield piece
    verifier.report(checksum)


def _recheck(storage: StorageBackend, key: str, checksum: str, size: int) -> None:
    """Ask the store again: the object there, of the size, with the checksum recorded."""
    found = storage.stat(key)
    if found.size != size or (storage.records_checksums and found.checksum != checksum):
        raise StorageError(
            f"{key}: the archive holds {found.size} bytes with xxh3-128 {found.checksum}, "
            f"expected {size} and {checksum}",
            transient=True,
        )


def _give_back(
    context: TaskContext, dtp_id: int, problem: ArchiveProblem, counts: dict[str, int]
) -> None:
    """Back to TRANSFERRED (try again), or to BUILT to be transferred again."""
    reason = str(problem)
    with transaction(context.factory) as session:
        if problem.retransfer:
            records.retransfer(session, dtp_id, context.batch_id, reason)
        else:
            step_items.fail(
                session,
                DataTransferPackage,
                dtp_id,
                ARCHIVE_STATES,
                context.batch_id,
                reason,
                retryable=problem.retryable,
                keep_waiting=True,
            )
    counts["retransfer" if problem.retransfer else "retry"] += 1
    log_line(f"transfer package {dtp_id}: not archived: {reason}")
