"""Where the steps put things: the buffer of a site, and folder paths inside locations.

Priority: among active locations of one type at a site, the one with the smallest
``priority`` number is the first choice (1 before 2); ties go to the older location.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import DataLocation, DiskDataLocation
from ccat_hpc.db.states import LocationType
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
