"""What the archive step records in ops-db (functions take a session, never commit)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataLocation,
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    DataTransferRoute,
    LongTermArchiveTransfer,
    LongTermArchiveTransferLog,
    RawDataFile,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.db.states import (
    LogLevel,
    PackageState,
    PhysicalCopyState,
    RawDataFileState,
    TransferState,
)
from ccat_hpc.db.transitions import move
from ccat_hpc.pipeline import copies, step_items
from ccat_hpc.pipeline.archive_metadata import record_metadata

P = PackageState
T = TransferState


def forget_unfinished_uploads(session: Session, dtp_id: int) -> None:
    """Uploads a dead task left running: failed, their RDPs waiting again (the DTP is ours)."""
    package_ids = list(
        session.scalars(
            select(RawDataPackage.id).where(
                RawDataPackage.data_transfer_package_id == dtp_id,
                RawDataPackage.state == P.ARCHIVING,
            )
        )
    )
    if not package_ids:
        return
    reason = "its task ended before the upload was recorded"
    step_items.fail_unfinished_attempts(
        session,
        LongTermArchiveTransfer,
        LongTermArchiveTransfer.raw_data_package_id.in_(package_ids),
        reason,
    )
    move(session, RawDataPackage, package_ids, P.ARCHIVING, P.TRANSFERRED, failure_reason=reason)


def start_upload(
    session: Session, package_id: int, origin_id: int, archive_id: int, batch_id: int
) -> int:
    """A LongTermArchiveTransfer for the RDP, RUNNING from now."""
    transfer = LongTermArchiveTransfer(
        raw_data_package_id=package_id,
        origin_location_id=origin_id,
        destination_location_id=archive_id,
        job_batch_id=batch_id,
        state=T.PENDING,
    )
    return step_items.start_attempt(session, transfer)


def record_archived(
    session: Session,
    package_id: int,
    transfer_id: int,
    copy_id: int,
    size: int,
    seconds: float,
    where: str,
    provenance: dict[str, Any],
) -> None:
    """The upload succeeded: its archive copy VERIFIED, the RDP and its files ARCHIVED,
    and its metadata written."""
    move(
        session,
        LongTermArchiveTransfer,
        [transfer_id],
        T.RUNNING,
        T.VERIFYING,
        bytes_transferred=size,
    )
    move(
        session,
        LongTermArchiveTransfer,
        [transfer_id],
        T.VERIFYING,
        T.SUCCEEDED,
        finished_at=utcnow(),
    )
    session.add(
        LongTermArchiveTransferLog(
            long_term_archive_transfer_id=transfer_id,
            level=LogLevel.INFO,
            message=f"{size} bytes to {where} in {seconds:.1f} s; size and checksum verified there",
        )
    )
    copies.verified(session, copy_id)
    move(
        session,
        RawDataPackage,
        [package_id],
        P.ARCHIVING,
        P.ARCHIVED,
        failure_reason=None,
        failure_retryable=None,
    )
    file_ids = list(
        session.scalars(select(RawDataFile.id).where(RawDataFile.raw_data_package_id == package_id))
    )
    move(session, RawDataFile, file_ids, RawDataFileState.PACKAGED, RawDataFileState.ARCHIVED)
    package = session.get_one(RawDataPackage, package_id)
    record_metadata(
        session,
        package,
        {**provenance, "archive_key": package.relative_path, "archived_at": utcnow().isoformat()},
    )


def record_upload_failure(
    session: Session, package_id: int, transfer_id: int, copy_id: int, reason: str, retryable: bool
) -> None:
    """The upload failed: nothing of it counts; the RDP waits to be uploaded again."""
    move(
        session,
        LongTermArchiveTransfer,
        [transfer_id],
        T.RUNNING,
        T.FAILED,
        finished_at=utcnow(),
        failure_reason=reason,
        failure_retryable=retryable,
    )
    session.add(
        LongTermArchiveTransferLog(
            long_term_archive_transfer_id=transfer_id, level=LogLevel.ERROR, message=reason
        )
    )
    copies.failed(session, copy_id, reason)
    move(session, RawDataPackage, [package_id], P.ARCHIVING, P.TRANSFERRED, failure_reason=reason)


def record_damaged_copy(
    session: Session,
    package_id: int,
    transfer_id: int,
    copy_id: int,
    buffer_id: int,
    reason: str,
) -> None:
    """The RDP's copy in the buffer failed verification on its way to the archive: nothing
    is uploaded, the copy is marked CORRUPT, and the next run unpacks the RDP again."""
    record_upload_failure(session, package_id, transfer_id, copy_id, reason, retryable=True)
    buffer_copy = copies.copy_at(session, RawDataPackagePhysicalCopy, package_id, buffer_id)
    if buffer_copy is not None:
        copies.found_bad(session, buffer_copy.id, PhysicalCopyState.CORRUPT, reason)


def retransfer(session: Session, dtp_id: int, batch_id: int, reason: str) -> None:
    """The destination copy is damaged: mark it, and send the DTP again."""
    moved = move(
        session,
        DataTransferPackage,
        [dtp_id],
        P.ARCHIVING,
        P.BUILT,
        only=step_items.held_by(DataTransferPackage, batch_id),
        claimed_by_batch_id=None,
        failure_reason=f"to be transferred again: {reason}",
        failure_retryable=True,
    )
    if not moved:
        return
    route_destination = session.scalar(
        select(DataTransferRoute.destination_site_id)
        .join(DataTransferPackage, DataTransferPackage.route_id == DataTransferRoute.id)
        .where(DataTransferPackage.id == dtp_id)
    )
    for copy in session.scalars(
        select(DataTransferPackagePhysicalCopy)
        .join(DataLocation, DataLocation.id == DataTransferPackagePhysicalCopy.data_location_id)
        .where(
            DataTransferPackagePhysicalCopy.data_transfer_package_id == dtp_id,
            DataLocation.site_id == route_destination,
            DataTransferPackagePhysicalCopy.state == PhysicalCopyState.VERIFIED,
        )
    ):
        copies.found_bad(session, copy.id, copies.problem_state(reason), reason)
