"""What the transfer step records in ops-db, hop by hop (functions take a session and
never commit), and what one hop needs to know."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataTransfer,
    DataTransferLog,
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    DataTransferRoute,
    RawDataPackage,
)
from ccat_hpc.db.states import LogLevel, PackageState, PhysicalCopyState, TransferState
from ccat_hpc.db.transitions import move
from ccat_hpc.pipeline import copies, step_items
from ccat_hpc.pipeline.transferring import Hop
from ccat_hpc.transfer.remote import DEFAULT_SSH

T = TransferState


@dataclass(frozen=True)
class HopJob:
    dtp_id: int
    name: str
    checksum: str
    size: int
    transfer_id: int
    copy_id: int
    #: the copy the hop starts from
    origin_copy_id: int
    method: str
    streams: int
    source: Path
    partial: Path
    final: Path
    host: str
    log_path: Path
    #: the ssh command that reaches ``host`` ($CCAT_RSYNC_SSH)
    ssh: str = DEFAULT_SSH
    #: the route's name (for metrics)
    route: str = ""


def forget_unfinished(session: Session, dtp_id: int) -> None:
    """Hops a dead task left running are failed (their partial files are overwritten)."""
    step_items.fail_unfinished_attempts(
        session,
        DataTransfer,
        DataTransfer.data_transfer_package_id == dtp_id,
        "its task ended before the transfer was recorded",
    )


def new_transfer(
    session: Session, dtp: DataTransferPackage, route: DataTransferRoute, hop: Hop, batch_id: int
) -> DataTransfer:
    transfer = DataTransfer(
        data_transfer_package_id=dtp.id,
        route_id=route.id,
        origin_location_id=hop.origin.id,
        destination_location_id=hop.destination.id,
        job_batch_id=batch_id,
        state=T.PENDING,
    )
    step_items.start_attempt(session, transfer)
    return transfer


def record_success(session: Session, job: HopJob, copied: int, seconds: float) -> None:
    move(
        session,
        DataTransfer,
        [job.transfer_id],
        T.RUNNING,
        T.VERIFYING,
        bytes_transferred=copied,
    )
    move(session, DataTransfer, [job.transfer_id], T.VERIFYING, T.SUCCEEDED, finished_at=utcnow())
    copies.verified(session, job.copy_id)
    rate = copied / seconds / 1e6
    session.add(
        DataTransferLog(
            data_transfer_id=job.transfer_id,
            level=LogLevel.INFO,
            message=f"{copied} bytes by {job.method} in {seconds:.1f} s ({rate:.0f} MB/s); "
            "checksum verified at the destination",
            log_path=str(job.log_path),
        )
    )


def fail_transfer(session: Session, job: HopJob, reason: str, retryable: bool) -> None:
    move(
        session,
        DataTransfer,
        [job.transfer_id],
        (T.RUNNING, T.VERIFYING),
        T.FAILED,
        finished_at=utcnow(),
        failure_reason=reason,
        failure_retryable=retryable,
    )
    copies.failed(session, job.copy_id, reason)
    session.add(
        DataTransferLog(
            data_transfer_id=job.transfer_id,
            level=LogLevel.ERROR,
            message=reason,
            log_path=str(job.log_path),
        )
    )


def copy_id_at(session: Session, dtp_id: int, location_id: int) -> int:
    copy = copies.copy_at(session, DataTransferPackagePhysicalCopy, dtp_id, location_id)
    return int(copy.id) if copy is not None else 0


def rebundle(session: Session, dtp_id: int, origin_copy_id: int, reason: str) -> None:
    """The DTP's origin copy is damaged: mark it, and free its RDPs to be bundled again."""
    if origin_copy_id:
        copies.found_bad(session, origin_copy_id, PhysicalCopyState.CORRUPT, reason)
    package_ids = list(
        session.scalars(
            select(RawDataPackage.id).where(RawDataPackage.data_transfer_package_id == dtp_id)
        )
    )
    move(
        session,
        RawDataPackage,
        package_ids,
        PackageState.TRANSFERRING,
        PackageState.BUILT,
        data_transfer_package_id=None,
    )
