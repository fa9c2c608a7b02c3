"""Upsert a catalog file into ops-db; loading the same file twice changes nothing."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.catalog.schema import (
    Catalog,
    ConstantElevationSourceEntry,
    FixedSourceEntry,
    ObservingProgramEntry,
    ObsUnitEntry,
    SourceEntry,
    TelescopeEntry,
)
from ccat_hpc.db.base import Base
from ccat_hpc.db.models import (
    ConstantElevationSource,
    FixedSource,
    Instrument,
    InstrumentModule,
    Line,
    Observatory,
    ObservingProgram,
    ObsMode,
    ObsUnit,
    SolarSystemObject,
    Source,
    SubObservingProgram,
    Telescope,
)
from ccat_hpc.db.upsert import UpsertReport, upsert
from ccat_hpc.errors import ConfigError
from ccat_hpc.yamlfile import load_model


def example_catalog_path() -> Path:
    """The shipped FYST example catalog (Prime-Cam and CHAI)."""
    return Path(str(resources.files("ccat_hpc.catalog") / "fyst.yaml"))


def read_catalog(path: Path) -> Catalog:
    return load_model(path, Catalog)


def load_catalog_file(session: Session, path: Path) -> UpsertReport:
    """Read, validate and load one catalog file; errors name the file."""
    catalog = read_catalog(path)
    try:
        return load_catalog(session, catalog)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_catalog(session: Session, catalog: Catalog) -> UpsertReport:
    report = UpsertReport()
    observatory = upsert(
        session,
        Observatory,
        {"name": catalog.observatory.name},
        {"description": catalog.observatory.description},
        report,
        f"observatory {catalog.observatory.name}",
    )
    for telescope in catalog.telescopes:
        _load_telescope(session, observatory, telescope, report)
    for line in catalog.lines:
        upsert(session, Line, {"name": line.name}, line.model_dump(exclude={"name"}), report, "")
    for source in catalog.sources:
        _load_source(session, source, report)
    for mode in catalog.obs_modes:
        upsert(session, ObsMode, {"name": mode.name}, {"description": mode.description}, report, "")
    for program in catalog.observing_programs:
        _load_program(session, program, report)
    return report


def _load_telescope(
    session: Session, observatory: Observatory, entry: TelescopeEntry, report: UpsertReport
) -> None:
    values = entry.model_dump(exclude={"name", "instruments"}) | {"observatory_id": observatory.id}
    telescope = upsert(session, Telescope, {"name": entry.name}, values, report, "")
    for instrument_entry in entry.instruments:
        instrument = upsert(
            session,
            Instrument,
            {"name": instrument_entry.name},
            {
                "telescope_id": telescope.id,
                "instrument_type": instrument_entry.type,
                "description": instrument_entry.description,
            },
            report,
            f"instrument {instrument_entry.name}",
        )
        for module in instrument_entry.modules:
            upsert(
                session,
                InstrumentModule,
                {"instrument_id": instrument.id, "name": module.name},
                {"description": module.description, "pixels": module.pixels},
                report,
                f"module {instrument_entry.name}/{module.name}",
            )


def _load_source(session: Session, entry: SourceEntry, report: UpsertReport) -> None:
    model: type[Source]
    if isinstance(entry, FixedSourceEntry):
        model = FixedSource
    elif isinstance(entry, ConstantElevationSourceEntry):
        model = ConstantElevationSource
    else:
        model = SolarSystemObject
    values = entry.model_dump(exclude={"name", "type"})
    upsert(session, model, {"name": entry.name}, values, report, f"source {entry.name}")


def _load_program(session: Session, entry: ObservingProgramEntry, report: UpsertReport) -> None:
    values = entry.model_dump(include={"short_name", "description", "principal_investigator"})
    program = upsert(session, ObservingProgram, {"name": entry.name}, values, report, "")
    sub_ids: dict[str, int] = {}
    for sub in entry.sub_programs:
        row = upsert(
            session,
            SubObservingProgram,
            {"observing_program_id": program.id, "name": sub.name},
            {"description": sub.description},
            report,
            "",
        )
        sub_ids[sub.name] = row.id
    for unit in entry.obs_units:
        _load_obs_unit(session, program, sub_ids, unit, report)


def _load_obs_unit(
    session: Session,
    program: ObservingProgram,
    sub_ids: dict[str, int],
    entry: ObsUnitEntry,
    report: UpsertReport,
) -> None:
    where = f"obs unit {entry.name}"
    values = {
        "observing_program_id": program.id,
        "sub_observing_program_id": sub_ids[entry.sub_program] if entry.sub_program else None,
        "instrument_id": _id_by_name(session, Instrument, entry.instrument, f"{where}: instrument"),
        "source_id": _optional_id(session, Source, entry.source, f"{where}: source"),
        "obs_mode_id": _optional_id(session, ObsMode, entry.obs_mode, f"{where}: obs_mode"),
        "priority": entry.priority,
        "duration_s": entry.duration_s,
        "min_elevation_deg": entry.min_elevation_deg,
        "description": entry.description,
    }
    upsert(session, ObsUnit, {"name": entry.name}, values, report, where)


def _optional_id(session: Session, model: type[Base], name: str | None, where: str) -> int | None:
    return None if name is None else _id_by_name(session, model, name, where)


def _id_by_name(session: Session, model: type[Base], name: str, where: str) -> int:
    found = session.scalars(select(model.id).filter_by(name=name)).one_or_none()  # type: ignore[attr-defined]
    if found is None:
        raise ConfigError(f"{where}: no {model.__name__} named {name!r}")
    return int(found)
