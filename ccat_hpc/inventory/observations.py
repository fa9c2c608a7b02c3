"""Observations (executed obs units): a filtered, paged list and one in full.

Lists are ordered by start time (then id, the tie-breaker), which the start-time index
serves; a page continues after the execution whose id it is given.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataLocation,
    ExecutedObsUnit,
    FiledManifest,
    Instrument,
    InstrumentModule,
    ObservingProgram,
    ObsUnit,
    RawDataFile,
    RawDataFilePhysicalCopy,
    RawDataPackage,
)
from ccat_hpc.db.states import ObservationStatus
from ccat_hpc.errors import NotFoundError
from ccat_hpc.inventory import lookup
from ccat_hpc.inventory.common import DEFAULT_LIMIT, Page, check_limit, iso, page_from_rows


@dataclass(frozen=True)
class ObservationFilter:
    """Which observations to list; every given field narrows the list.

    ``since`` is inclusive and ``until`` exclusive (both compare the start time).
    """

    program: str | None = None
    obs_unit: str | None = None
    instrument: str | None = None
    module: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    statuses: tuple[ObservationStatus, ...] = ()


@dataclass(frozen=True)
class ObservationRow:
    id: str
    start_time: str
    end_time: str
    status: str
    obs_unit: str
    program: str
    instrument: str
    modules: list[str]
    file_count: int
    bytes: int


@dataclass(frozen=True)
class Count:
    """Files (and their bytes) in one state, or with copies in one state at one location."""

    state: str
    count: int
    bytes: int
    location: str | None = None


@dataclass(frozen=True)
class ModuleFiling:
    module: str
    file_count: int
    bytes: int
    location: str
    manifest: str
    filed_at: str


@dataclass(frozen=True)
class PackageSummary:
    name: str
    module: str
    part: int
    state: str
    size: int


@dataclass(frozen=True)
class ObservationDetail(ObservationRow):
    sub_program: str | None
    source: str | None
    mean_pwv_mm: float | None
    mean_elevation_deg: float | None
    metadata: dict[str, Any]
    filings: list[ModuleFiling]
    files_by_state: list[Count]
    copies: list[Count]
    packages: list[PackageSummary]


def _base_query() -> Select[uuid.UUID, datetime, datetime, ObservationStatus, str, str, str]:
    return (
        select(
            ExecutedObsUnit.id,
            ExecutedObsUnit.start_time,
            ExecutedObsUnit.end_time,
            ExecutedObsUnit.status,
            ObsUnit.name,
            ObservingProgram.name,
            Instrument.name,
        )
        .join(ObsUnit, ObsUnit.id == ExecutedObsUnit.obs_unit_id)
        .join(ObservingProgram, ObservingProgram.id == ObsUnit.observing_program_id)
        .join(Instrument, Instrument.id == ObsUnit.instrument_id)
    )


def catalog_conditions(session: Session, wanted: ObservationFilter) -> list[ColumnElement[bool]]:
    """Conditions on program, obs unit, instrument and module (names checked first)."""
    conditions: list[ColumnElement[bool]] = []
    instrument_id = None
    if wanted.instrument is not None:
        instrument_id = lookup.instrument_id(session, wanted.instrument)
        conditions.append(ObsUnit.instrument_id == instrument_id)
    if wanted.module is not None:
        modules = lookup.module_ids(session, wanted.module, instrument_id)
        conditions.append(
            exists().where(
                FiledManifest.executed_obs_unit_id == ExecutedObsUnit.id,
                FiledManifest.instrument_module_id.in_(modules),
            )
        )
    if wanted.program is not None:
        conditions.append(
            ObsUnit.observing_program_id == lookup.program_id(session, wanted.program)
        )
    if wanted.obs_unit is not None:
        conditions.append(
            ExecutedObsUnit.obs_unit_id == lookup.obs_unit_id(session, wanted.obs_unit)
        )
    return conditions


def time_conditions(wanted: ObservationFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.since is not None:
        conditions.append(ExecutedObsUnit.start_time >= wanted.since)
    if wanted.until is not None:
        conditions.append(ExecutedObsUnit.start_time < wanted.until)
    if wanted.statuses:
        conditions.append(ExecutedObsUnit.status.in_(wanted.statuses))
    return conditions


def _after(session: Session, after: uuid.UUID) -> ColumnElement[bool]:
    """Rows after execution ``after`` in (start time, id) order."""
    start = session.scalar(select(ExecutedObsUnit.start_time).where(ExecutedObsUnit.id == after))
    if start is None:
        raise NotFoundError(f"no execution {after} in ops-db to continue after")
    return or_(
        ExecutedObsUnit.start_time > start,
        and_(ExecutedObsUnit.start_time == start, ExecutedObsUnit.id > after),
    )


def _filings(
    session: Session, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[str, int, int]]]:
    """(module, files, bytes) of every filed manifest of these executions."""
    rows = session.execute(
        select(
            FiledManifest.executed_obs_unit_id,
            InstrumentModule.name,
            FiledManifest.file_count,
            FiledManifest.total_bytes,
        )
        .join(InstrumentModule, InstrumentModule.id == FiledManifest.instrument_module_id)
        .where(FiledManifest.executed_obs_unit_id.in_(ids))
        .order_by(InstrumentModule.name)
    ).all()
    filings: dict[uuid.UUID, list[tuple[str, int, int]]] = {}
    for execution_id, module, count, size in rows:
        filings.setdefault(execution_id, []).append((module, count, size))
    return filings


def _row(values: Sequence[Any], filings: list[tuple[str, int, int]]) -> ObservationRow:
    execution_id, start, end, status, obs_unit, program, instrument = values
    return ObservationRow(
        id=str(execution_id),
        start_time=iso(start),
        end_time=iso(end),
        status=str(status),
        obs_unit=obs_unit,
        program=program,
        instrument=instrument,
        modules=[module for module, _, _ in filings],
        file_count=sum(count for _, count, _ in filings),
        bytes=sum(size for _, _, size in filings),
    )


def list_observations(
    session: Session,
    wanted: ObservationFilter | None = None,
    limit: int = DEFAULT_LIMIT,
    after: uuid.UUID | None = None,
) -> Page[ObservationRow]:
    """Observations matching ``wanted``, oldest first; file counts as filed by manifest."""
    check_limit(limit)
    wanted = wanted or ObservationFilter()
    query = _base_query().where(*catalog_conditions(session, wanted), *time_conditions(wanted))
    if after is not None:
        query = query.where(_after(session, after))
    order = (ExecutedObsUnit.start_time, ExecutedObsUnit.id)
    rows = session.execute(query.order_by(*order).limit(limit + 1)).all()
    filings = _filings(session, [row[0] for row in rows[:limit]])
    items = [_row(row, filings.get(row[0], [])) for row in rows]
    return page_from_rows(items, limit, lambda item: item.id)


def _module_filings(session: Session, execution_id: uuid.UUID) -> list[ModuleFiling]:
    rows = session.execute(
        select(FiledManifest, InstrumentModule.name, DataLocation.name)
        .join(InstrumentModule, InstrumentModule.id == FiledManifest.instrument_module_id)
        .join(DataLocation, DataLocation.id == FiledManifest.data_location_id)
        .where(FiledManifest.executed_obs_unit_id == execution_id)
        .order_by(InstrumentModule.name)
    ).all()
    return [
        ModuleFiling(
            module, f.file_count, f.total_bytes, location, f.source_name, iso(f.created_at)
        )
        for f, module, location in rows
    ]


def _files_by_state(session: Session, execution_id: uuid.UUID) -> list[Count]:
    rows = session.execute(
        select(RawDataFile.state, func.count(), func.coalesce(func.sum(RawDataFile.size), 0))
        .where(RawDataFile.executed_obs_unit_id == execution_id)
        .group_by(RawDataFile.state)
    ).all()
    counts = [Count(str(state), int(n), int(size)) for state, n, size in rows]
    return sorted(counts, key=lambda count: count.state)


def _copies_by_location(session: Session, execution_id: uuid.UUID) -> list[Count]:
    copy = RawDataFilePhysicalCopy
    rows = session.execute(
        select(DataLocation.name, copy.state, func.count(), func.sum(RawDataFile.size))
        .select_from(copy)
        .join(RawDataFile, RawDataFile.id == copy.raw_data_file_id)
        .join(DataLocation, DataLocation.id == copy.data_location_id)
        .where(RawDataFile.executed_obs_unit_id == execution_id)
        .group_by(DataLocation.name, copy.state)
        .order_by(DataLocation.name, copy.state)
    ).all()
    return [Count(str(state), int(n), int(size or 0), loc) for loc, state, n, size in rows]


def _packages(session: Session, execution_id: uuid.UUID) -> list[PackageSummary]:
    rows = session.execute(
        select(RawDataPackage, InstrumentModule.name)
        .join(InstrumentModule, InstrumentModule.id == RawDataPackage.instrument_module_id)
        .where(RawDataPackage.executed_obs_unit_id == execution_id)
        .order_by(InstrumentModule.name, RawDataPackage.part_number)
    ).all()
    return [
        PackageSummary(p.name, module, p.part_number, str(p.state), p.size) for p, module in rows
    ]


def show_observation(session: Session, execution_id: uuid.UUID) -> ObservationDetail:
    """One execution: what it observed, its modules, its files by state, where copies are."""
    execution = lookup.execution(session, execution_id)
    values = session.execute(_base_query().where(ExecutedObsUnit.id == execution_id)).one()
    modules = _module_filings(session, execution_id)
    filings = [(m.module, m.file_count, m.bytes) for m in modules]
    unit = execution.obs_unit
    return ObservationDetail(
        **vars(_row(values, filings)),
        sub_program=unit.sub_observing_program.name if unit.sub_observing_program else None,
        source=unit.source.name if unit.source else None,
        mean_pwv_mm=execution.mean_pwv_mm,
        mean_elevation_deg=execution.mean_elevation_deg,
        metadata=dict(execution.extra_metadata or {}),
        filings=modules,
        files_by_state=_files_by_state(session, execution_id),
        copies=_copies_by_location(session, execution_id),
        packages=_packages(session, execution_id),
    )
