"""The catalog file format (see ``ccat_hpc/catalog/fyst.yaml``), as validated models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ccat_hpc.db.states import InstrumentType

Text = Annotated[str, Field(max_length=100, min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObservatoryEntry(Strict):
    name: Text
    description: str = ""


class ModuleEntry(Strict):
    name: Text
    description: str = ""
    pixels: int | None = Field(default=None, ge=0)


class InstrumentEntry(Strict):
    name: Text
    type: InstrumentType
    description: str = ""
    modules: list[ModuleEntry] = []


class TelescopeEntry(Strict):
    name: Text
    description: str = ""
    longitude_deg: float | None = Field(default=None, ge=-180, le=360)
    latitude_deg: float | None = Field(default=None, ge=-90, le=90)
    altitude_m: float | None = None
    instruments: list[InstrumentEntry] = []


class FixedSourceEntry(Strict):
    type: Literal["fixed"]
    name: Text
    description: str = ""
    ra_deg: float = Field(ge=0, lt=360)
    dec_deg: float = Field(ge=-90, le=90)
    frame: str = "icrs"


class ConstantElevationSourceEntry(Strict):
    type: Literal["constant_elevation"]
    name: Text
    description: str = ""
    ra_min_deg: float = Field(ge=0, lt=360)
    ra_max_deg: float = Field(ge=0, le=360)
    dec_min_deg: float = Field(ge=-90, le=90)
    dec_max_deg: float = Field(ge=-90, le=90)
    elevation_deg: float = Field(ge=0, le=90)


class SolarSystemObjectEntry(Strict):
    type: Literal["solar_system_object"]
    name: Text
    description: str = ""
    ephemeris_name: Text


SourceEntry = Annotated[
    FixedSourceEntry | ConstantElevationSourceEntry | SolarSystemObjectEntry,
    Field(discriminator="type"),
]


class LineEntry(Strict):
    name: Text
    species: str = ""
    transition: str = ""
    rest_frequency_ghz: float = Field(gt=0)


class ObsModeEntry(Strict):
    name: Text
    description: str = ""


class SubProgramEntry(Strict):
    name: Text
    description: str = ""


class ObsUnitEntry(Strict):
    name: Text
    instrument: Text
    sub_program: str | None = None
    source: str | None = None
    obs_mode: str | None = None
    priority: float = 0.0
    duration_s: float | None = Field(default=None, gt=0)
    min_elevation_deg: float | None = Field(default=None, ge=0, le=90)
    description: str = ""


class ObservingProgramEntry(Strict):
    name: Text
    short_name: str = ""
    description: str = ""
    principal_investigator: str = ""
    sub_programs: list[SubProgramEntry] = []
    obs_units: list[ObsUnitEntry] = []

    @model_validator(mode="after")
    def _sub_programs_exist(self) -> ObservingProgramEntry:
        known = {s.name for s in self.sub_programs}
        for unit in self.obs_units:
            if unit.sub_program is not None and unit.sub_program not in known:
                raise ValueError(
                    f"obs unit {unit.name!r}: sub_program {unit.sub_program!r} is not one of "
                    f"this program's sub_programs"
                )
        return self


class Catalog(Strict):
    observatory: ObservatoryEntry
    telescopes: list[TelescopeEntry] = []
    lines: list[LineEntry] = []
    sources: list[SourceEntry] = []
    obs_modes: list[ObsModeEntry] = []
    observing_programs: list[ObservingProgramEntry] = []
