"""Where the steps put things: the buffer of a site, and folder paths inside locations.

Priority: among active locations of one type at a site, the one with the smallest
``priority`` number is the first choice (1 before 2); ties go to the older location.
A BUFFER with a ``capacity_bytes`` whose copies fill it past the site's
``buffer_max_fill`` (0.9 unless configured) is passed over for new data: the next
active buffer by priority takes it, so an archive or link that is down for days does
not stop the site filling, packaging and bundling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataLocation,
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    DiskDataLocation,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    Site,
)
from ccat_hpc.db.states import LocationType, PhysicalCopyState
from ccat_hpc.storage.base import StorageBackend, StorageError
from ccat_hpc.storage.factory import backend_for
from ccat_hpc.storage.posix import PosixStorage


def best_location(session: Session, site_id: int, kind: LocationType) -> DataLocation | None:
    """The site's active location of ``kind`` with the best priority, or None."""
    return session.scalars(
        select(DataLocation)
        .where(
            DataLocation.site_id == site_id,
            DataLocation.location_type == kind,
            DataLocation.active.is_(True),
        )
        .order_by(DataLocation.priority, DataLocation.id)
        .limit(1)
    ).first()


#: copy states that take room at a location (being written, there, or not yet removed)
OCCUPYING = (
    PhysicalCopyState.PENDING,
    PhysicalCopyState.PRESENT,
    PhysicalCopyState.VERIFIED,
    PhysicalCopyState.CORRUPT,
    PhysicalCopyState.DELETION_PENDING,
)
DEFAULT_MAX_FILL = 0.9


@dataclass(frozen=True)
class BufferFill:
    """How full a BUFFER is, by the packages ops-db has there (capacity 0: no limit is
    tracked, it is never full)."""

    site: str
    location: str
    location_id: int
    priority: int
    used_bytes: int
    capacity_bytes: int
    max_fill: float

    @property
    def fill(self) -> float:
        return self.used_bytes / self.capacity_bytes if self.capacity_bytes else 0.0

    @property
    def full(self) -> bool:
        return self.capacity_bytes > 0 and self.fill >= self.max_fill


def used_bytes(session: Session, location_id: int) -> int:
    """Bytes of the packages (RDPs and DTPs) with a copy taking room at the location."""
    total = 0
    for package, copy, key in (
        (
            RawDataPackage,
            RawDataPackagePhysicalCopy,
            RawDataPackagePhysicalCopy.raw_data_package_id,
        ),
        (
            DataTransferPackage,
            DataTransferPackagePhysicalCopy,
            DataTransferPackagePhysicalCopy.data_transfer_package_id,
        ),
    ):
        identity = copy.__mapper__.polymorphic_identity
        query = (
            select(func.coalesce(func.sum(package.size), 0))
            .join(copy, key == package.id)
            .where(
                copy.data_location_id == location_id,
                copy.state.in_(OCCUPYING),
                # the subclass named on the base row too: the planner then starts from
                # the location's copies, not from every package copy
                copy.type == identity,
            )
        )
        total += int(session.scalar(query) or 0)
    return total


def buffer_fills(session: Session, site_id: int | None = None) -> list[BufferFill]:
    """Every active BUFFER (of one site, or all) by priority; the bytes used are counted
    only where a capacity is set."""
    query = (
        select(DataLocation, Site)
        .join(Site, Site.id == DataLocation.site_id)
        .where(
            DataLocation.location_type == LocationType.BUFFER,
            DataLocation.active.is_(True),
        )
        .order_by(Site.name, DataLocation.priority, DataLocation.id)
    )
    if site_id is not None:
        query = query.where(DataLocation.site_id == site_id)
    fills: list[BufferFill] = []
    for location, site in session.execute(query):
        limit = site.settings.get("pipeline", {}).get("buffer_max_fill", DEFAULT_MAX_FILL)
        fills.append(
            BufferFill(
                site.name,
                location.name,
                location.id,
                location.priority,
                used_bytes(session, location.id) if location.capacity_bytes else 0,
                int(location.capacity_bytes or 0),
                float(limit),
            )
        )
    return fills


def buffer_for_writing(session: Session, site_id: int) -> DataLocation | None:
    """The site's active BUFFER by priority that is not past its fill level, or None
    (no buffer, or every one full)."""
    room = next((f for f in buffer_fills(session, site_id) if not f.full), None)
    return None if room is None else session.get_one(DataLocation, room.location_id)


def folder_storage(location: DataLocation) -> PosixStorage:
    """The folder behind ``location``; StorageError when it is no folder (S3, tape)."""
    if not isinstance(location, DiskDataLocation):
        raise StorageError(
            f"location {location.name} is {location.storage_type} storage; "
            "this step needs a folder (disk) there"
        )
    return PosixStorage(Path(location.path))


def storage_for(location: DataLocation, environ: Mapping[str, str]) -> StorageBackend:
    return backend_for(location, environ)
