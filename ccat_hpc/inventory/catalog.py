"""The catalog in ops-db: instruments with modules, programs with obs units, sources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, with_polymorphic

from ccat_hpc.db.models import (
    ConstantElevationSource,
    FixedSource,
    Instrument,
    ObservingProgram,
    ObsUnit,
    SolarSystemObject,
    Source,
)
from ccat_hpc.inventory.common import table


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    description: str
    pixels: int | None
    available: bool


@dataclass(frozen=True)
class InstrumentInfo:
    name: str
    type: str
    telescope: str
    description: str
    available: bool
    modules: list[ModuleInfo]


@dataclass(frozen=True)
class ObsUnitInfo:
    name: str
    instrument: str
    sub_program: str | None
    source: str | None
    obs_mode: str | None
    duration_s: float | None


@dataclass(frozen=True)
class ProgramInfo:
    name: str
    short_name: str
    principal_investigator: str
    description: str
    sub_programs: list[str]
    obs_units: list[ObsUnitInfo]


@dataclass(frozen=True)
class SourceInfo:
    name: str
    type: str
    description: str
    position: dict[str, Any]


@dataclass(frozen=True)
class CatalogOverview:
    instruments: list[InstrumentInfo]
    observing_programs: list[ProgramInfo]
    sources: list[SourceInfo]


def _instrument(instrument: Instrument) -> InstrumentInfo:
    modules = [
        ModuleInfo(m.name, m.description, m.pixels, m.available)
        for m in sorted(instrument.modules, key=lambda m: m.name)
    ]
    return InstrumentInfo(
        instrument.name,
        str(instrument.instrument_type),
        instrument.telescope.name,
        instrument.description,
        instrument.available,
        modules,
    )


def _obs_unit(unit: ObsUnit) -> ObsUnitInfo:
    return ObsUnitInfo(
        unit.name,
        unit.instrument.name,
        unit.sub_observing_program.name if unit.sub_observing_program else None,
        unit.source.name if unit.source else None,
        unit.obs_mode.name if unit.obs_mode else None,
        unit.duration_s,
    )


def _programs(session: Session) -> list[ProgramInfo]:
    programs = session.scalars(
        select(ObservingProgram)
        .options(selectinload(ObservingProgram.sub_programs))
        .order_by(ObservingProgram.name)
    ).all()
    units = session.scalars(
        select(ObsUnit)
        .options(
            selectinload(ObsUnit.instrument),
            selectinload(ObsUnit.sub_observing_program),
            selectinload(ObsUnit.source),
            selectinload(ObsUnit.obs_mode),
        )
        .order_by(ObsUnit.name)
    ).all()
    return [
        ProgramInfo(
            p.name,
            p.short_name,
            p.principal_investigator,
            p.description,
            sorted(sub.name for sub in p.sub_programs),
            [_obs_unit(u) for u in units if u.observing_program_id == p.id],
        )
        for p in programs
    ]


def _position(source: Source) -> dict[str, Any]:
    if isinstance(source, FixedSource):
        return {"ra_deg": source.ra_deg, "dec_deg": source.dec_deg, "frame": source.frame}
    if isinstance(source, ConstantElevationSource):
        names = ("ra_min_deg", "ra_max_deg", "dec_min_deg", "dec_max_deg", "elevation_deg")
        return {name: getattr(source, name) for name in names}
    if isinstance(source, SolarSystemObject):
        return {"ephemeris_name": source.ephemeris_name}
    return {}


def _sources(session: Session) -> list[SourceInfo]:
    every_kind = with_polymorphic(Source, "*")
    sources = session.scalars(select(every_kind).order_by(every_kind.name))
    return [SourceInfo(s.name, s.type, s.description, _position(s)) for s in sources]


def catalog_overview(session: Session) -> CatalogOverview:
    """Everything of the catalog a user names in commands and manifests."""
    instruments = session.scalars(
        select(Instrument)
        .options(selectinload(Instrument.modules), selectinload(Instrument.telescope))
        .order_by(Instrument.name)
    )
    return CatalogOverview(
        [_instrument(i) for i in instruments], _programs(session), _sources(session)
    )


def _position_text(position: dict[str, Any]) -> str:
    return " ".join(f"{key.removesuffix('_deg')}={value}" for key, value in position.items())


def _render_program(program: ProgramInfo) -> list[str]:
    short = f" ({program.short_name})" if program.short_name else ""
    title = f"observing program {program.name}{short}"
    if not program.obs_units:
        return [f"{title}: no obs units"]
    headers = ("OBS UNIT", "INSTRUMENT", "SUB-PROGRAM", "SOURCE", "MODE")
    units = [
        (u.name, u.instrument, u.sub_program or "-", u.source or "-", u.obs_mode or "-")
        for u in program.obs_units
    ]
    return [title, *("  " + line for line in table(headers, units))]


def render_catalog(catalog: CatalogOverview) -> str:
    """Instruments, then each observing program with its obs units, then sources."""
    if not (catalog.instruments or catalog.observing_programs or catalog.sources):
        return "no catalog loaded (ccat-hpc catalog load)"
    rows = [
        (i.name, i.type, i.telescope, ", ".join(m.name for m in i.modules) or "-")
        for i in catalog.instruments
    ]
    lines = [
        "instruments",
        *("  " + x for x in table(("NAME", "TYPE", "TELESCOPE", "MODULES"), rows)),
    ]
    for program in catalog.observing_programs:
        lines += ["", *_render_program(program)]
    sources = [(s.name, s.type, _position_text(s.position)) for s in catalog.sources]
    lines += ["", "sources", *("  " + x for x in table(("NAME", "TYPE", "POSITION"), sources))]
    return "\n".join(lines)
