"""RawDataPackages and transfers for people: lists paged by id, one package with its
members and copies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from ccat_hpc.db.models import (
    DataLocation,
    DataTransfer,
    DataTransferPackage,
    DataTransferRoute,
    InstrumentModule,
    RawDataFile,
    RawDataPackage,
)
from ccat_hpc.db.states import PackageState, TransferState
from ccat_hpc.errors import NotFoundError
from ccat_hpc.inventory.common import DEFAULT_LIMIT, MAX_LIMIT, Page, check_limit, iso_or_none
from ccat_hpc.inventory.trace import find_package, package_trace


@dataclass(frozen=True)
class PackageRow:
    id: int
    name: str
    state: str
    size: int
    checksum: str | None
    execution_id: str
    module: str
    files: int
    transfer_package: str | None


@dataclass(frozen=True)
class TransferRow:
    id: int
    transfer_package: str
    route: str | None
    origin: str
    destination: str
    state: str
    attempts: int
    bytes: int
    started_at: str | None
    finished_at: str | None
    reason: str | None


def list_packages(
    session: Session,
    *,
    execution: uuid.UUID | None = None,
    state: PackageState | None = None,
    limit: int = DEFAULT_LIMIT,
    after: int | None = None,
) -> Page[PackageRow]:
    """RawDataPackages in id order, of one execution or in one state when given."""
    check_limit(limit)
    members = (
        select(func.count())
        .where(RawDataFile.raw_data_package_id == RawDataPackage.id)
        .scalar_subquery()
    )
    query = (
        select(RawDataPackage, InstrumentModule.name, DataTransferPackage.name, members)
        .join(InstrumentModule, InstrumentModule.id == RawDataPackage.instrument_module_id)
        .outerjoin(
            DataTransferPackage, DataTransferPackage.id == RawDataPackage.data_transfer_package_id
        )
    )
    if execution is not None:
        query = query.where(RawDataPackage.executed_obs_unit_id == execution)
    if state is not None:
        query = query.where(RawDataPackage.state == state)
    if after is not None:
        query = query.where(RawDataPackage.id > after)
    rows = session.execute(query.order_by(RawDataPackage.id).limit(limit + 1)).all()
    items = [
        PackageRow(
            p.id,
            p.name,
            str(p.state),
            p.size,
            p.checksum,
            str(p.executed_obs_unit_id),
            module,
            int(count),
            dtp,
        )
        for p, module, dtp, count in rows[:limit]
    ]
    return Page(items, items[-1].id if len(rows) > limit else None)


def show_package(session: Session, what: str, members: int = MAX_LIMIT) -> dict[str, Any]:
    """One package (``rdp:ID``, name or path): its chain of custody and its first
    ``members`` files in the tar's order."""
    package = find_package(session, what)
    if package is None:
        raise NotFoundError(f"no raw data package {what!r} (rdp:ID, a name or a path)")
    shown = package_trace(session, package)
    files = session.execute(
        select(RawDataFile.id, RawDataFile.relative_path, RawDataFile.size, RawDataFile.checksum)
        .where(RawDataFile.raw_data_package_id == package.id)
        .order_by(RawDataFile.relative_path)
        .limit(members)
    ).all()
    shown["members"] = [
        {"id": i, "path": path, "size": size, "checksum": checksum}
        for i, path, size, checksum in files
    ]
    shown["member_count"] = session.scalar(
        select(func.count()).where(RawDataFile.raw_data_package_id == package.id)
    )
    return shown


def list_transfers(
    session: Session,
    *,
    state: TransferState | None = None,
    limit: int = DEFAULT_LIMIT,
    after: int | None = None,
) -> Page[TransferRow]:
    """Buffer-to-buffer transfers, newest first (``after``: ids below it)."""
    check_limit(limit)
    origin = aliased(DataLocation)
    destination = aliased(DataLocation)
    query = (
        select(DataTransfer, DataTransferPackage.name, DataTransferRoute.name)
        .join(DataTransferPackage, DataTransferPackage.id == DataTransfer.data_transfer_package_id)
        .outerjoin(DataTransferRoute, DataTransferRoute.id == DataTransfer.route_id)
        .join(origin, origin.id == DataTransfer.origin_location_id)
        .join(destination, destination.id == DataTransfer.destination_location_id)
        .add_columns(origin.name, destination.name)
    )
    if state is not None:
        query = query.where(DataTransfer.state == state)
    if after is not None:
        query = query.where(DataTransfer.id < after)
    rows = session.execute(query.order_by(DataTransfer.id.desc()).limit(limit + 1)).all()
    items = [
        TransferRow(
            t.id,
            dtp,
            route,
            source,
            target,
            str(t.state),
            t.attempts,
            t.bytes_transferred,
            iso_or_none(t.started_at),
            iso_or_none(t.finished_at),
            t.failure_reason,
        )
        for t, dtp, route, source, target in rows[:limit]
    ]
    return Page(items, items[-1].id if len(rows) > limit else None)
