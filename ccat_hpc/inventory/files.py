"""Raw data files: a filtered, paged list and one file with every copy of it.

Lists are ordered by file id (filing order, the primary key); a page continues after
the file id it is given. A location *holds* a file when it has a copy of it that is not
deleted (whatever else its state: a missing or corrupt copy is still listed there).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session, joinedload

from ccat_hpc.db.models import (
    DataLocation,
    Instrument,
    InstrumentModule,
    PhysicalCopy,
    RawDataFile,
    RawDataFileCheck,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.db.states import PhysicalCopyState, RawDataFileState
from ccat_hpc.errors import NotFoundError
from ccat_hpc.inventory import lookup
from ccat_hpc.inventory.common import (
    DEFAULT_LIMIT,
    Page,
    check_limit,
    glob_condition,
    iso,
    iso_or_none,
    page_from_rows,
)

FileCopy = RawDataFilePhysicalCopy


@dataclass(frozen=True)
class FileFilter:
    """Which files to list; every given field narrows the list (``path`` is a glob)."""

    states: tuple[RawDataFileState, ...] = ()
    location: str | None = None
    execution: uuid.UUID | None = None
    module: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    state: str
    size: int
    checksum: str | None
    execution_id: str
    instrument: str
    module: str
    locations: list[str]


@dataclass(frozen=True)
class CopyInfo:
    location: str
    site: str
    location_type: str
    state: str
    created_at: str
    verified_at: str | None
    deleted_at: str | None
    failure_reason: str | None


@dataclass(frozen=True)
class PackageInfo:
    id: int
    name: str
    state: str
    size: int
    checksum: str | None
    copies: list[CopyInfo]


@dataclass(frozen=True)
class CheckInfo:
    """One checksum check of the file's SOURCE copy (oldest first in a FileDetail)."""

    checked_at: str
    outcome: str
    computed_checksum: str | None
    reason: str | None
    job_batch: int | None


@dataclass(frozen=True)
class FileDetail(FileRow):
    name: str
    file_type: str
    checksum_algorithm: str
    failure_reason: str | None
    created_at: str
    obs_unit: str
    metadata: dict[str, Any]
    copies: list[CopyInfo]
    package: PackageInfo | None
    checks: list[CheckInfo]


def _base_query() -> Select[RawDataFile, str, str]:
    return (
        select(RawDataFile, Instrument.name, InstrumentModule.name)
        .join(InstrumentModule, InstrumentModule.id == RawDataFile.instrument_module_id)
        .join(Instrument, Instrument.id == InstrumentModule.instrument_id)
    )


def _held_at(location_id: int) -> ColumnElement[bool]:
    return (
        select(FileCopy.id)
        .where(
            FileCopy.raw_data_file_id == RawDataFile.id,
            FileCopy.data_location_id == location_id,
            FileCopy.state != PhysicalCopyState.DELETED,
        )
        .exists()
    )


def _conditions(session: Session, wanted: FileFilter) -> list[ColumnElement[bool]]:
    """SQL conditions for ``wanted``; every name is checked first."""
    conditions: list[ColumnElement[bool]] = []
    if wanted.states:
        conditions.append(RawDataFile.state.in_(wanted.states))
    if wanted.location is not None:
        conditions.append(_held_at(lookup.location_id(session, wanted.location)))
    if wanted.execution is not None:
        lookup.execution(session, wanted.execution)
        conditions.append(RawDataFile.executed_obs_unit_id == wanted.execution)
    if wanted.module is not None:
        modules = lookup.module_ids(session, wanted.module)
        conditions.append(RawDataFile.instrument_module_id.in_(modules))
    if wanted.path is not None:
        dialect = session.get_bind().dialect.name
        conditions.append(glob_condition(RawDataFile.relative_path, wanted.path, dialect))
    return conditions


def _locations(session: Session, file_ids: Sequence[int]) -> dict[int, list[str]]:
    """The locations holding each of these files, by name."""
    rows = session.execute(
        select(FileCopy.raw_data_file_id, DataLocation.name)
        .join(DataLocation, DataLocation.id == FileCopy.data_location_id)
        .where(FileCopy.raw_data_file_id.in_(file_ids), FileCopy.state != PhysicalCopyState.DELETED)
        .order_by(DataLocation.name)
    ).all()
    held: dict[int, list[str]] = {}
    for file_id, name in rows:
        held.setdefault(file_id, []).append(name)
    return held


def _row(file: RawDataFile, instrument: str, module: str, locations: list[str]) -> FileRow:
    return FileRow(
        id=file.id,
        path=file.relative_path,
        state=str(file.state),
        size=file.size,
        checksum=file.checksum,
        execution_id=str(file.executed_obs_unit_id),
        instrument=instrument,
        module=module,
        locations=locations,
    )


def list_files(
    session: Session,
    wanted: FileFilter | None = None,
    limit: int = DEFAULT_LIMIT,
    after: int | None = None,
) -> Page[FileRow]:
    """Files matching ``wanted`` in id order, with the locations holding them."""
    check_limit(limit)
    query = _base_query().where(*_conditions(session, wanted or FileFilter()))
    if after is not None:
        query = query.where(RawDataFile.id > after)
    rows = session.execute(query.order_by(RawDataFile.id).limit(limit + 1)).all()
    held = _locations(session, [row[0].id for row in rows])
    items = [
        _row(file, instrument, module, held.get(file.id, [])) for file, instrument, module in rows
    ]
    return page_from_rows(items, limit, lambda item: item.id)


def _copy_info(copy: PhysicalCopy) -> CopyInfo:
    location = copy.data_location
    return CopyInfo(
        location=location.name,
        site=location.site.name,
        location_type=str(location.location_type),
        state=str(copy.state),
        created_at=iso(copy.created_at),
        verified_at=iso_or_none(copy.verified_at),
        deleted_at=iso_or_none(copy.deleted_at),
        failure_reason=copy.failure_reason,
    )


def _file_copies(session: Session, file_id: int) -> list[CopyInfo]:
    copies = session.scalars(
        select(FileCopy)
        .options(_with_location())
        .where(FileCopy.raw_data_file_id == file_id)
        .order_by(FileCopy.id)
    )
    return [_copy_info(copy) for copy in copies]


def _with_location() -> Any:
    """Load a copy's location and its site with the copy (not one query each)."""
    return joinedload(PhysicalCopy.data_location).joinedload(DataLocation.site)


def _package_info(session: Session, package: RawDataPackage | None) -> PackageInfo | None:
    if package is None:
        return None
    copies = session.scalars(
        select(RawDataPackagePhysicalCopy)
        .options(_with_location())
        .where(RawDataPackagePhysicalCopy.raw_data_package_id == package.id)
        .order_by(RawDataPackagePhysicalCopy.id)
    )
    return PackageInfo(
        id=package.id,
        name=package.name,
        state=str(package.state),
        size=package.size,
        checksum=package.checksum,
        copies=[_copy_info(copy) for copy in copies],
    )


def _checks(session: Session, file_id: int) -> list[CheckInfo]:
    rows = session.scalars(
        select(RawDataFileCheck)
        .where(RawDataFileCheck.raw_data_file_id == file_id)
        .order_by(RawDataFileCheck.id)
    )
    return [
        CheckInfo(iso(c.checked_at), str(c.outcome), c.computed_checksum, c.reason, c.job_batch_id)
        for c in rows
    ]


def show_file(session: Session, file_id: int) -> FileDetail:
    """One file: checksum, size, state, its checks, its package and every copy of both."""
    found = session.execute(_base_query().where(RawDataFile.id == file_id)).one_or_none()
    if found is None:
        raise NotFoundError(f"no raw data file with id {file_id} in ops-db")
    file, instrument, module = found
    copies = _file_copies(session, file_id)
    gone = str(PhysicalCopyState.DELETED)
    held = sorted({copy.location for copy in copies if copy.state != gone})
    return FileDetail(
        **vars(_row(file, instrument, module, held)),
        name=file.name,
        file_type=file.file_type,
        checksum_algorithm=file.checksum_algorithm,
        failure_reason=file.failure_reason,
        created_at=iso(file.created_at),
        obs_unit=file.executed_obs_unit.obs_unit.name,
        metadata=dict(file.extra_metadata or {}),
        copies=copies,
        package=_package_info(session, file.raw_data_package),
        checks=_checks(session, file_id),
    )
