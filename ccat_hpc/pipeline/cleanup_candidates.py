"""The copies cleanup looks at, and the archive copies that may prove them safe to delete.

A candidate is a copy at a SOURCE, BUFFER or PROCESSING location past its location's
retention (older than its ``retention_days``; at PROCESSING, past its expiry) in a
state with bytes to remove. The retention is filtered in SQL so a pass reads only
copies that are due; :func:`ccat_hpc.pipeline.cleanup_policy.decide` checks it again
with everything else. Each candidate names the RawDataPackages whose LONG_TERM_ARCHIVE
copies must prove it: a file's package, the package itself, or every package of a
transfer package.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, aliased

from ccat_hpc.db.models import (
    DataLocation,
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    RawDataFile,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    Site,
)
from ccat_hpc.db.states import LocationType
from ccat_hpc.db.transitions import in_chunks
from ccat_hpc.pipeline.cleanup_policy import REMOVABLE, ArchiveCopy, CopyToClean
from ccat_hpc.pipeline.staging_layout import staged_key

FILE, PACKAGE, TRANSFER_PACKAGE = "file", "package", "transfer package"
KINDS = (FILE, PACKAGE, TRANSFER_PACKAGE)


@dataclass(frozen=True)
class Candidate:
    copy: CopyToClean
    location_id: int
    #: file, package or transfer package
    what: str
    name: str
    #: where its bytes are at its location
    key: str
    size: int
    #: the packages (id, name) whose archive copies must prove it
    packages: tuple[tuple[int, str], ...]
    #: a SOURCE file as filed: (inode, mtime in ns); its bytes are deleted only if the
    #: file there is still that one
    identity: tuple[int | None, int | None] | None = None


@dataclass(frozen=True)
class CleanupLocation:
    """A location cleanup looks at, with its retention and its site's archive rule."""

    id: int
    name: str
    location_type: LocationType
    retention_days: int | None
    #: verified LONG_TERM_ARCHIVE copies the data must have
    required: int


def cleanup_locations(
    session: Session, name: str | None = None, site: str | None = None
) -> list[CleanupLocation]:
    """Every SOURCE, BUFFER and PROCESSING location (of ``site``; or the one called
    ``name``)."""
    query = (
        select(DataLocation, Site.settings)
        .join(Site, Site.id == DataLocation.site_id)
        .where(DataLocation.location_type != LocationType.LONG_TERM_ARCHIVE)
        .order_by(DataLocation.id)
    )
    if name is not None:
        query = query.where(DataLocation.name == name)
    if site is not None:
        query = query.where(Site.name == site)
    return [
        CleanupLocation(
            location.id,
            location.name,
            location.location_type,
            location.retention_days,
            int((settings or {}).get("pipeline", {}).get("archive_copies_required", 1)),
        )
        for location, settings in session.execute(query)
    ]


def _due(copy: Any, location: CleanupLocation, now: datetime) -> ColumnElement[bool] | None:
    """The SQL filter of copies past the location's retention; None: nothing is due."""
    if location.location_type is LocationType.PROCESSING:
        return copy.expires_at.is_not(None) & (copy.expires_at <= now)  # type: ignore[no-any-return]
    if location.retention_days is None:
        return None
    return copy.created_at <= now - timedelta(days=location.retention_days)  # type: ignore[no-any-return]


def _page(query: Any, copy: Any, location: CleanupLocation, after: int, limit: int) -> Any:
    return (
        query.where(
            copy.data_location_id == location.id,
            copy.type == copy.__mapper__.polymorphic_identity,
            copy.state.in_(REMOVABLE),
            copy.id > after,
        )
        .order_by(copy.id)
        .limit(limit)
    )


def _to_clean(row: Any, location: CleanupLocation) -> CopyToClean:
    return CopyToClean(
        row.id,
        location.name,
        location.location_type,
        row.state,
        row.created_at,
        location.retention_days,
        row.expires_at,
    )


def candidates(
    session: Session,
    location: CleanupLocation,
    what: str,
    now: datetime,
    *,
    after: int = 0,
    limit: int = 1000,
) -> list[Candidate]:
    """Up to ``limit`` copies of kind ``what`` at ``location`` past its retention, by
    copy id above ``after``."""
    if what == FILE:
        return _file_candidates(session, location, now, after, limit)
    if what == PACKAGE:
        return _package_candidates(session, location, now, after, limit)
    return _transfer_package_candidates(session, location, now, after, limit)


def _file_candidates(
    session: Session, location: CleanupLocation, now: datetime, after: int, limit: int
) -> list[Candidate]:
    copy = RawDataFilePhysicalCopy
    due = _due(copy, location, now)
    if due is None:
        return []
    source = aliased(DataLocation)
    query = (
        select(copy, RawDataFile, source.name, RawDataPackage.name)
        .join(RawDataFile, RawDataFile.id == copy.raw_data_file_id)
        .join(source, source.id == RawDataFile.source_location_id)
        .outerjoin(RawDataPackage, RawDataPackage.id == RawDataFile.raw_data_package_id)
        .where(due)
    )
    found: list[Candidate] = []
    for row, file, source_name, package in session.execute(
        _page(query, copy, location, after, limit)
    ):
        at_source = location.location_type is LocationType.SOURCE
        found.append(
            Candidate(
                _to_clean(row, location),
                location.id,
                FILE,
                file.relative_path,
                file.relative_path if at_source else staged_key(source_name, file.relative_path),
                file.size,
                () if package is None else ((int(file.raw_data_package_id), package),),
                (file.source_inode, file.source_mtime_ns) if at_source else None,
            )
        )
    return found


def _package_rows(
    session: Session,
    copy: Any,
    package: Any,
    held: Any,
    location: CleanupLocation,
    now: datetime,
    after: int,
    limit: int,
) -> list[Any]:
    """(copy, package) of one page of the package copies past their retention (``held``:
    the copy's column naming its package)."""
    due = _due(copy, location, now)
    if due is None:
        return []
    query = select(copy, package).join(package, package.id == held).where(due)
    return list(session.execute(_page(query, copy, location, after, limit)).all())


def _package_candidates(
    session: Session, location: CleanupLocation, now: datetime, after: int, limit: int
) -> list[Candidate]:
    copy = RawDataPackagePhysicalCopy
    held = copy.raw_data_package_id
    rows = _package_rows(session, copy, RawDataPackage, held, location, now, after, limit)
    return [
        Candidate(
            _to_clean(row, location),
            location.id,
            PACKAGE,
            package.name,
            package.relative_path,
            package.size,
            ((package.id, package.name),),
        )
        for row, package in rows
    ]


def _transfer_package_candidates(
    session: Session, location: CleanupLocation, now: datetime, after: int, limit: int
) -> list[Candidate]:
    copy = DataTransferPackagePhysicalCopy
    held = copy.data_transfer_package_id
    rows = _package_rows(session, copy, DataTransferPackage, held, location, now, after, limit)
    members: dict[int, list[tuple[int, str]]] = {}
    ids = [dtp.id for _, dtp in rows]
    for chunk in in_chunks(ids):
        for package_id, name, dtp_id in session.execute(
            select(RawDataPackage.id, RawDataPackage.name, RawDataPackage.data_transfer_package_id)
            .where(RawDataPackage.data_transfer_package_id.in_(chunk))
            .order_by(RawDataPackage.id)
        ):
            members.setdefault(dtp_id or 0, []).append((package_id, name))
    return [
        Candidate(
            _to_clean(row, location),
            location.id,
            TRANSFER_PACKAGE,
            dtp.name,
            dtp.relative_path,
            dtp.size,
            tuple(members.get(dtp.id, [])),
        )
        for row, dtp in rows
    ]


def archive_copies(session: Session, package_ids: Iterable[int]) -> dict[int, list[ArchiveCopy]]:
    """Every LONG_TERM_ARCHIVE copy of each package, in any state."""
    copy = RawDataPackagePhysicalCopy
    found: dict[int, list[ArchiveCopy]] = {}
    ids: Sequence[int] = sorted(set(package_ids))
    for chunk in in_chunks(ids):
        rows = session.execute(
            select(copy, DataLocation.name, RawDataPackage)
            .join(DataLocation, DataLocation.id == copy.data_location_id)
            .join(RawDataPackage, RawDataPackage.id == copy.raw_data_package_id)
            .where(
                copy.raw_data_package_id.in_(chunk),
                DataLocation.location_type == LocationType.LONG_TERM_ARCHIVE,
            )
            .order_by(copy.id)
        )
        for row, location_name, package in rows:
            found.setdefault(package.id, []).append(
                ArchiveCopy(
                    location_name,
                    row.state,
                    row.verified_at,
                    copy_id=row.id,
                    location_id=row.data_location_id,
                    package=package.name,
                    key=package.relative_path,
                    size=package.size,
                    checksum=package.checksum or "",
                )
            )
    return found
