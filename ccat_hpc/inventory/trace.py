"""The chain of custody of one raw file (or one RawDataPackage): where every copy of it
is, with its checksum and when it was last verified, and every package and transfer it
travelled in. What an operator asks first when something looks wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataLocation,
    DataTransfer,
    DataTransferLog,
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    DiskDataLocation,
    LongTermArchiveTransfer,
    PhysicalCopy,
    RawDataFile,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.errors import NotFoundError
from ccat_hpc.inventory.common import iso_or_none

#: the largest id ops-db stores (a 64-bit integer)
MAX_ID = 2**63 - 1


def _an_id(text: str) -> bool:
    """Whether ``text`` is a row id: ASCII digits of a number ops-db can hold."""
    return text.isascii() and text.isdigit() and int(text) <= MAX_ID


def find_file(session: Session, what: str) -> RawDataFile | None:
    """A raw file by id, by path below its SOURCE root, or by its absolute path there."""
    if _an_id(what):
        return session.get(RawDataFile, int(what))
    found = session.scalars(select(RawDataFile).where(RawDataFile.relative_path == what)).first()
    if found is not None:
        return found
    path = Path(what)
    if path.is_absolute():
        for location in session.scalars(select(DiskDataLocation)):
            root = Path(location.path)
            if path.is_relative_to(root):
                relative = path.relative_to(root).as_posix()
                return session.scalars(
                    select(RawDataFile).where(
                        RawDataFile.source_location_id == location.id,
                        RawDataFile.relative_path == relative,
                    )
                ).first()
    return None


def find_package(session: Session, what: str) -> RawDataPackage | None:
    """An RDP by ``rdp:ID``, by name, or by its path in a location."""
    if what.startswith("rdp:") and _an_id(what[4:]):
        return session.get(RawDataPackage, int(what[4:]))
    return session.scalars(
        select(RawDataPackage).where(
            (RawDataPackage.name == what) | (RawDataPackage.relative_path == what)
        )
    ).first()


def _copy(copy: PhysicalCopy, location: DataLocation, checksum: str | None) -> dict[str, Any]:
    return {
        "location": location.name,
        "location_type": str(location.location_type),
        "state": str(copy.state),
        "checksum": checksum,
        "verified_at": iso_or_none(copy.verified_at),
        "reason": copy.failure_reason,
    }


def _copies(
    session: Session, model: Any, column: Any, item_id: int, checksum: str | None
) -> list[dict[str, Any]]:
    rows = session.execute(
        select(model, DataLocation)
        .join(DataLocation, DataLocation.id == model.data_location_id)
        .where(column == item_id)
        .order_by(model.id)
    ).all()
    return [_copy(copy, location, checksum) for copy, location in rows]


def _hops(session: Session, dtp_id: int) -> list[dict[str, Any]]:
    hops = []
    for transfer in session.scalars(
        select(DataTransfer)
        .where(DataTransfer.data_transfer_package_id == dtp_id)
        .order_by(DataTransfer.id)
    ):
        log = session.scalars(
            select(DataTransferLog.log_path)
            .where(DataTransferLog.data_transfer_id == transfer.id)
            .order_by(DataTransferLog.id.desc())
        ).first()
        seconds = None
        if transfer.started_at and transfer.finished_at:
            seconds = (transfer.finished_at - transfer.started_at).total_seconds()
        hops.append(
            {
                "id": transfer.id,
                "from": transfer.origin_location.name,
                "to": transfer.destination_location.name,
                "method": transfer.route.method if transfer.route else None,
                "state": str(transfer.state),
                "bytes": transfer.bytes_transferred,
                "seconds": seconds,
                "finished_at": iso_or_none(transfer.finished_at),
                "reason": transfer.failure_reason,
                "log": log,
            }
        )
    return hops


def _transfer_package(session: Session, dtp_id: int | None) -> dict[str, Any] | None:
    if dtp_id is None:
        return None
    dtp = session.get_one(DataTransferPackage, dtp_id)
    return {
        "id": dtp.id,
        "name": dtp.name,
        "state": str(dtp.state),
        "size": dtp.size,
        "checksum": dtp.checksum,
        "route": dtp.route_id,
        "reason": dtp.failure_reason,
        "copies": _copies(
            session,
            DataTransferPackagePhysicalCopy,
            DataTransferPackagePhysicalCopy.data_transfer_package_id,
            dtp.id,
            dtp.checksum,
        ),
        "transfers": _hops(session, dtp.id),
    }


def _archive_uploads(session: Session, package_id: int) -> list[dict[str, Any]]:
    return [
        {
            "id": upload.id,
            "to": upload.destination_location.name,
            "state": str(upload.state),
            "bytes": upload.bytes_transferred,
            "finished_at": iso_or_none(upload.finished_at),
            "reason": upload.failure_reason,
        }
        for upload in session.scalars(
            select(LongTermArchiveTransfer)
            .where(LongTermArchiveTransfer.raw_data_package_id == package_id)
            .order_by(LongTermArchiveTransfer.id)
        )
    ]


def package_trace(session: Session, package: RawDataPackage) -> dict[str, Any]:
    return {
        "id": package.id,
        "name": package.name,
        "state": str(package.state),
        "size": package.size,
        "checksum": package.checksum,
        "path": package.relative_path,
        "reason": package.failure_reason,
        "copies": _copies(
            session,
            RawDataPackagePhysicalCopy,
            RawDataPackagePhysicalCopy.raw_data_package_id,
            package.id,
            package.checksum,
        ),
        "transfer_package": _transfer_package(session, package.data_transfer_package_id),
        "archive_uploads": _archive_uploads(session, package.id),
    }


def trace(session: Session, what: str) -> dict[str, Any]:
    """The chain of custody of a file (id or path) or an RDP (``rdp:ID``, name or path)."""
    item = find_file(session, what)
    if item is not None:
        member = None
        package = None
        if item.raw_data_package_id is not None:
            package = session.get_one(RawDataPackage, item.raw_data_package_id)
            index = (package.member_index or {}).get("members", [])
            member = next((m for m in index if m["name"] == item.relative_path), None)
        return {
            "file": {
                "id": item.id,
                "path": item.relative_path,
                "execution": str(item.executed_obs_unit_id),
                "state": str(item.state),
                "size": item.size,
                "checksum": item.checksum,
                "reason": item.failure_reason,
                "copies": _copies(
                    session,
                    RawDataFilePhysicalCopy,
                    RawDataFilePhysicalCopy.raw_data_file_id,
                    item.id,
                    item.checksum,
                ),
                "in_package": member,
            },
            "package": None if package is None else package_trace(session, package),
        }
    found = find_package(session, what)
    if found is None:
        raise NotFoundError(
            f"no raw data file or package {what!r} (a file id or path, rdp:ID, or a package name)"
        )
    return {"file": None, "package": package_trace(session, found)}
