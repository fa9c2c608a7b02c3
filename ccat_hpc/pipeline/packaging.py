"""The package step's planning: checksummed files → RawDataPackages (RDPs).

The files of one ExecutedObsUnit × InstrumentModule go into one RDP, or into several
parts when they hold more than the site's ``max_package_bytes``: files in path order,
a new part whenever the next file would not fit (a single file larger than the
maximum gets a part of its own). The same files always give the same parts.

A group is packaged only once none of its files is still waiting for its checksum;
files found corrupt or missing are left out (they need an operator; once repaired and
checksummed they go into a new part). Planning creates the RDP rows (PLANNED) and
assigns the files in one transaction; the database makes sure no file is assigned
twice (the assignment only takes files with no package, and part numbers are unique).
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataLocation,
    ExecutedObsUnit,
    InstrumentModule,
    RawDataFile,
    RawDataPackage,
    Site,
)
from ccat_hpc.db.states import PackageState, RawDataFileState
from ccat_hpc.db.transitions import in_chunks
from ccat_hpc.sites.schema import PipelineSettings

#: tar bytes a member may add besides its data: ustar header, a PAX header, padding
MEMBER_OVERHEAD = 3 * 512
#: what one member adds to the index, at most (name ≤ 1024 bytes, numbers, checksum)
INDEX_ENTRY_BYTES = 1200
#: the index member's header, end-of-archive blocks and slack
PACKAGE_OVERHEAD = 8 * 1024
ASSIGN_CHUNK = 5000  # ids per statement (SQLite takes 32,766 parameters)
WAITING_FOR_CHECKSUM = (RawDataFileState.FILED, RawDataFileState.CHECKSUMMING)


@dataclass(frozen=True)
class FileToPackage:
    file_id: int
    relative_path: str
    size: int


def packaged_size(size: int) -> int:
    """What a file of ``size`` bytes may take in a package, at most."""
    return size + MEMBER_OVERHEAD + INDEX_ENTRY_BYTES


def plan_parts(files: Iterable[FileToPackage], max_bytes: int) -> list[list[FileToPackage]]:
    """The files in parts of at most ``max_bytes`` (pure; the same files give the same parts)."""
    parts: list[list[FileToPackage]] = []
    current: list[FileToPackage] = []
    used = PACKAGE_OVERHEAD
    for item in sorted(files, key=lambda f: f.relative_path):
        needed = packaged_size(item.size)
        if current and used + needed > max_bytes:
            parts.append(current)
            current, used = [], PACKAGE_OVERHEAD
        current.append(item)
        used += needed
    if current:
        parts.append(current)
    return parts


@dataclass(frozen=True)
class GroupKey:
    execution_id: uuid.UUID
    module_id: int


@dataclass(frozen=True)
class PlannedPackages:
    package_ids: list[int]
    files: int


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def package_name(instrument: str, module: str, execution_id: uuid.UUID, part: int) -> str:
    """``INSTRUMENT_MODULE_EXECUTION_pNNN``: unique, readable, safe in any file system."""
    return f"{_safe(instrument)}_{_safe(module)}_{execution_id}_p{part:03d}"


def package_path(start_time: datetime, name: str) -> str:
    """Where an RDP lives inside a location: by observing day, then its name."""
    return f"rdp/{start_time:%Y/%m/%d}/{name}.tar"


def files_ready(session: Session, site: str | None) -> dict[GroupKey, list[FileToPackage]]:
    """Checksummed files with no package, of groups with no file still being checksummed."""
    query = select(
        RawDataFile.id,
        RawDataFile.relative_path,
        RawDataFile.size,
        RawDataFile.executed_obs_unit_id,
        RawDataFile.instrument_module_id,
    ).where(
        RawDataFile.state == RawDataFileState.CHECKSUMMED,
        RawDataFile.raw_data_package_id.is_(None),
    )
    if site is not None:
        query = query.join(DataLocation, DataLocation.id == RawDataFile.source_location_id).join(
            Site, and_(Site.id == DataLocation.site_id, Site.name == site)
        )
    groups: dict[GroupKey, list[FileToPackage]] = defaultdict(list)
    for file_id, path, size, execution_id, module_id in session.execute(query):
        groups[GroupKey(execution_id, module_id)].append(FileToPackage(file_id, path, size))
    for key in _groups_still_checksumming(session):
        groups.pop(key, None)
    return dict(groups)


def _groups_still_checksumming(session: Session) -> set[GroupKey]:
    """Groups with a file FILED or CHECKSUMMING (found through the state index)."""
    rows = session.execute(
        select(RawDataFile.executed_obs_unit_id, RawDataFile.instrument_module_id)
        .where(RawDataFile.state.in_(WAITING_FOR_CHECKSUM))
        .distinct()
    )
    return {GroupKey(execution_id, module_id) for execution_id, module_id in rows}


def max_package_bytes(session: Session, site: str | None) -> int:
    """The site's ``pipeline.max_package_bytes`` (the default without a site)."""
    default = PipelineSettings().max_package_bytes
    if site is None:
        return default
    settings = session.scalar(select(Site.settings).where(Site.name == site)) or {}
    return int(settings.get("pipeline", {}).get("max_package_bytes", default))


def plan_packages(session: Session, site: str | None, max_bytes: int) -> PlannedPackages:
    """Create PLANNED RDPs for every group of files that is ready; assign the files."""
    created: list[int] = []
    files = 0
    for key, group in sorted(files_ready(session, site).items(), key=lambda kv: str(kv[0])):
        for part in plan_parts(group, max_bytes):
            created.append(_create_package(session, key, part))
            files += len(part)
    return PlannedPackages(created, files)


def _create_package(session: Session, key: GroupKey, part: Sequence[FileToPackage]) -> int:
    execution = session.get_one(ExecutedObsUnit, key.execution_id)
    module = session.get_one(InstrumentModule, key.module_id)
    number = _next_part_number(session, key)
    name = package_name(module.instrument.name, module.name, key.execution_id, number)
    package = RawDataPackage(
        name=name,
        relative_path=package_path(execution.start_time, name),
        part_number=number,
        state=PackageState.PLANNED,
        executed_obs_unit_id=key.execution_id,
        instrument_module_id=key.module_id,
        size=sum(item.size for item in part),
    )
    session.add(package)
    session.flush()
    _assign(session, package.id, [item.file_id for item in part])
    return package.id


def _next_part_number(session: Session, key: GroupKey) -> int:
    highest = session.scalar(
        select(func.max(RawDataPackage.part_number)).where(
            RawDataPackage.executed_obs_unit_id == key.execution_id,
            RawDataPackage.instrument_module_id == key.module_id,
        )
    )
    return 0 if highest is None else highest + 1


class PlanConflict(Exception):
    """Another planner assigned some of these files first (the transaction is rolled back)."""


def _assign(session: Session, package_id: int, file_ids: list[int]) -> None:
    assigned = 0
    for chunk in in_chunks(file_ids, ASSIGN_CHUNK):
        assigned += _assign_some(session, package_id, list(chunk))
    if assigned != len(file_ids):
        raise PlanConflict(f"{len(file_ids) - assigned} file(s) were packaged by another planner")


def _assign_some(session: Session, package_id: int, file_ids: list[int]) -> int:
    return len(
        session.scalars(
            update(RawDataFile)
            .where(
                RawDataFile.id.in_(file_ids),
                RawDataFile.raw_data_package_id.is_(None),
                RawDataFile.state == RawDataFileState.CHECKSUMMED,
            )
            .values(raw_data_package_id=package_id)
            .returning(RawDataFile.id)
            .execution_options(synchronize_session=False)
        ).all()
    )
