"""The observational hierarchy: what was planned and what was executed.

Observatory ─< Telescope ─< Instrument ─< InstrumentModule ─< InstrumentModuleConfiguration
ObservingProgram ─< SubObservingProgram;  ObsUnit ─< ExecutedObsUnit ─< RawDataFile
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccat_hpc.db.base import Base, BigIntPK, CreatedMixin, IdMixin, state_enum
from ccat_hpc.db.states import InstrumentType, ObservationStatus

if TYPE_CHECKING:
    from ccat_hpc.db.models.data import RawDataFile


class Observatory(IdMixin, Base):
    __tablename__ = "observatory"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    telescopes: Mapped[list[Telescope]] = relationship(back_populates="observatory")


class Telescope(IdMixin, Base):
    __tablename__ = "telescope"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    observatory_id: Mapped[int] = mapped_column(ForeignKey("observatory.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    longitude_deg: Mapped[float | None] = mapped_column(Float)
    latitude_deg: Mapped[float | None] = mapped_column(Float)
    altitude_m: Mapped[float | None] = mapped_column(Float)
    observatory: Mapped[Observatory] = relationship(back_populates="telescopes")
    instruments: Mapped[list[Instrument]] = relationship(back_populates="telescope")


class Instrument(IdMixin, Base):
    __tablename__ = "instrument"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    telescope_id: Mapped[int] = mapped_column(ForeignKey("telescope.id"), index=True)
    instrument_type: Mapped[InstrumentType] = mapped_column(state_enum(InstrumentType))
    description: Mapped[str] = mapped_column(Text, default="")
    available: Mapped[bool] = mapped_column(default=True)
    telescope: Mapped[Telescope] = relationship(back_populates="instruments")
    modules: Mapped[list[InstrumentModule]] = relationship(back_populates="instrument")


class InstrumentModule(IdMixin, Base):
    __tablename__ = "instrument_module"
    __table_args__ = (UniqueConstraint("instrument_id", "name"),)
    name: Mapped[str] = mapped_column(String(100))
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instrument.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    pixels: Mapped[int | None]
    available: Mapped[bool] = mapped_column(default=True)
    instrument: Mapped[Instrument] = relationship(back_populates="modules")


class Line(IdMixin, Base):
    """A spectral line (for CHAI and EoR-Spec configurations)."""

    __tablename__ = "line"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    species: Mapped[str] = mapped_column(String(50), default="")
    transition: Mapped[str] = mapped_column(String(50), default="")
    rest_frequency_ghz: Mapped[float] = mapped_column(Float)


class InstrumentModuleConfiguration(IdMixin, Base):
    """How one module was set up for an obs unit (polymorphic by instrument)."""

    __tablename__ = "instrument_module_configuration"
    type: Mapped[str] = mapped_column(String(40))
    instrument_module_id: Mapped[int] = mapped_column(
        ForeignKey("instrument_module.id"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), default="")
    instrument_module: Mapped[InstrumentModule] = relationship()
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "generic"}


class PrimeCamModuleConfiguration(InstrumentModuleConfiguration):
    __tablename__ = "prime_cam_module_configuration"
    id: Mapped[int] = mapped_column(
        ForeignKey("instrument_module_configuration.id"), primary_key=True
    )
    center_frequency_ghz: Mapped[float | None] = mapped_column(Float)
    bandwidth_ghz: Mapped[float | None] = mapped_column(Float)
    detector_count: Mapped[int | None]
    __mapper_args__ = {"polymorphic_identity": "primecam"}


class ChaiModuleConfiguration(InstrumentModuleConfiguration):
    __tablename__ = "chai_module_configuration"
    id: Mapped[int] = mapped_column(
        ForeignKey("instrument_module_configuration.id"), primary_key=True
    )
    line_id: Mapped[int | None] = mapped_column(ForeignKey("line.id"), index=True)
    lo_frequency_ghz: Mapped[float | None] = mapped_column(Float)
    sideband: Mapped[str] = mapped_column(String(8), default="")
    line: Mapped[Line | None] = relationship()
    __mapper_args__ = {"polymorphic_identity": "chai"}


class ChaiTiling(IdMixin, Base):
    __tablename__ = "chai_tiling"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    tiles_x: Mapped[int] = mapped_column(default=1)
    tiles_y: Mapped[int] = mapped_column(default=1)
    step_arcsec: Mapped[float] = mapped_column(Float, default=0.0)
    position_angle_deg: Mapped[float] = mapped_column(Float, default=0.0)


class ChaiInparParameter(IdMixin, Base):
    """A named set of CHAI observing-script (inpar) parameters."""

    __tablename__ = "chai_inpar_parameter"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ObservationConfiguration(IdMixin, Base):
    """How an obs unit is observed (polymorphic by instrument)."""

    __tablename__ = "observation_configuration"
    type: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100), default="")
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "generic"}


class PrimeCamObservationConfiguration(ObservationConfiguration):
    __tablename__ = "prime_cam_observation_configuration"
    id: Mapped[int] = mapped_column(ForeignKey("observation_configuration.id"), primary_key=True)
    scan_parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    __mapper_args__ = {"polymorphic_identity": "primecam"}


class ChaiObservationConfiguration(ObservationConfiguration):
    __tablename__ = "chai_observation_configuration"
    id: Mapped[int] = mapped_column(ForeignKey("observation_configuration.id"), primary_key=True)
    chai_tiling_id: Mapped[int | None] = mapped_column(ForeignKey("chai_tiling.id"), index=True)
    chai_inpar_parameter_id: Mapped[int | None] = mapped_column(
        ForeignKey("chai_inpar_parameter.id"), index=True
    )
    line_id: Mapped[int | None] = mapped_column(ForeignKey("line.id"), index=True)
    chai_tiling: Mapped[ChaiTiling | None] = relationship()
    chai_inpar_parameter: Mapped[ChaiInparParameter | None] = relationship()
    line: Mapped[Line | None] = relationship()
    __mapper_args__ = {"polymorphic_identity": "chai"}


class Source(IdMixin, Base):
    """What an obs unit points at (polymorphic)."""

    __tablename__ = "source"
    type: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "source"}


class FixedSource(Source):
    __tablename__ = "fixed_source"
    id: Mapped[int] = mapped_column(ForeignKey("source.id"), primary_key=True)
    ra_deg: Mapped[float] = mapped_column(Float)
    dec_deg: Mapped[float] = mapped_column(Float)
    frame: Mapped[str] = mapped_column(String(20), default="icrs")
    __mapper_args__ = {"polymorphic_identity": "fixed"}


class ConstantElevationSource(Source):
    __tablename__ = "constant_elevation_source"
    id: Mapped[int] = mapped_column(ForeignKey("source.id"), primary_key=True)
    ra_min_deg: Mapped[float] = mapped_column(Float)
    ra_max_deg: Mapped[float] = mapped_column(Float)
    dec_min_deg: Mapped[float] = mapped_column(Float)
    dec_max_deg: Mapped[float] = mapped_column(Float)
    elevation_deg: Mapped[float] = mapped_column(Float)
    __mapper_args__ = {"polymorphic_identity": "constant_elevation"}


class SolarSystemObject(Source):
    __tablename__ = "solar_system_object"
    id: Mapped[int] = mapped_column(ForeignKey("source.id"), primary_key=True)
    ephemeris_name: Mapped[str] = mapped_column(String(100))
    __mapper_args__ = {"polymorphic_identity": "solar_system_object"}


class ObsMode(IdMixin, Base):
    __tablename__ = "obs_mode"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class ObservingProgram(IdMixin, Base):
    __tablename__ = "observing_program"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    short_name: Mapped[str] = mapped_column(String(40), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    principal_investigator: Mapped[str] = mapped_column(String(200), default="")
    sub_programs: Mapped[list[SubObservingProgram]] = relationship(
        back_populates="observing_program"
    )


class SubObservingProgram(IdMixin, Base):
    __tablename__ = "sub_observing_program"
    __table_args__ = (UniqueConstraint("observing_program_id", "name"),)
    name: Mapped[str] = mapped_column(String(100))
    observing_program_id: Mapped[int] = mapped_column(
        ForeignKey("observing_program.id"), index=True
    )
    description: Mapped[str] = mapped_column(Text, default="")
    observing_program: Mapped[ObservingProgram] = relationship(back_populates="sub_programs")


obs_unit_module_configuration = Table(
    "obs_unit_module_configuration",
    Base.metadata,
    Column("obs_unit_id", BigIntPK, ForeignKey("obs_unit.id"), primary_key=True),
    Column(
        "instrument_module_configuration_id",
        BigIntPK,
        ForeignKey(
            "instrument_module_configuration.id",
            name="fk_obs_unit_module_configuration_configuration_id",
        ),
        primary_key=True,
    ),
)


class ObsUnit(IdMixin, Base):
    """The smallest schedulable unit of observing."""

    __tablename__ = "obs_unit"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    observing_program_id: Mapped[int] = mapped_column(
        ForeignKey("observing_program.id"), index=True
    )
    sub_observing_program_id: Mapped[int | None] = mapped_column(
        ForeignKey("sub_observing_program.id"), index=True
    )
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instrument.id"), index=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("source.id"), index=True)
    obs_mode_id: Mapped[int | None] = mapped_column(ForeignKey("obs_mode.id"), index=True)
    observation_configuration_id: Mapped[int | None] = mapped_column(
        ForeignKey("observation_configuration.id"), index=True
    )
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    duration_s: Mapped[float | None] = mapped_column(Float)
    min_elevation_deg: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text, default="")
    observing_program: Mapped[ObservingProgram] = relationship()
    sub_observing_program: Mapped[SubObservingProgram | None] = relationship()
    instrument: Mapped[Instrument] = relationship()
    source: Mapped[Source | None] = relationship()
    obs_mode: Mapped[ObsMode | None] = relationship()
    observation_configuration: Mapped[ObservationConfiguration | None] = relationship()
    module_configurations: Mapped[list[InstrumentModuleConfiguration]] = relationship(
        secondary=obs_unit_module_configuration
    )


class PreScheduledSlot(IdMixin, Base):
    __tablename__ = "pre_scheduled_slot"
    obs_unit_id: Mapped[int] = mapped_column(ForeignKey("obs_unit.id"), index=True)
    start_time: Mapped[datetime]
    end_time: Mapped[datetime]
    obs_unit: Mapped[ObsUnit] = relationship()


class ExecutedObsUnit(CreatedMixin, Base):
    """One execution of an obs unit; its id is the instrument's execution UUID."""

    __tablename__ = "executed_obs_unit"
    __table_args__ = (Index("ix_executed_obs_unit_start_time", "start_time"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    obs_unit_id: Mapped[int] = mapped_column(ForeignKey("obs_unit.id"), index=True)
    start_time: Mapped[datetime]
    end_time: Mapped[datetime]
    status: Mapped[ObservationStatus] = mapped_column(state_enum(ObservationStatus))
    mean_pwv_mm: Mapped[float | None] = mapped_column(Float)
    mean_elevation_deg: Mapped[float | None] = mapped_column(Float)
    extra_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    obs_unit: Mapped[ObsUnit] = relationship()
    raw_data_files: Mapped[list[RawDataFile]] = relationship(
        back_populates="executed_obs_unit", viewonly=True
    )
