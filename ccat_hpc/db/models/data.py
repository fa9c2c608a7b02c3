"""The data hierarchy: files, packages, transfer packages and their physical copies.

RawDataFile ─▶ RawDataPackage (tar ≤ 50 GB) ─▶ DataTransferPackage (tar of RDPs)
Each of the three has PhysicalCopy rows, one per DataLocation that holds it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccat_hpc.db.base import Base, CreatedMixin, IdMixin, state_enum
from ccat_hpc.db.states import PackageState, PhysicalCopyState, RawDataFileState

if TYPE_CHECKING:
    from ccat_hpc.db.models.observation import ExecutedObsUnit, InstrumentModule
    from ccat_hpc.db.models.storage import DataLocation, Site

DEFAULT_CHECKSUM_ALGORITHM = "xxh3_128"
DEFAULT_MAX_PACKAGE_BYTES = 50 * 10**9


class StepItemMixin:
    """What a pipeline step needs on an item it works on: its claim and its failures."""

    #: the job batch whose task works on the item now; only that batch records it
    claimed_by_batch_id: Mapped[int | None] = mapped_column(ForeignKey("job_batch.id"), index=True)
    #: how many times a step tried the item
    attempts: Mapped[int] = mapped_column(default=0)
    #: after a failure: whether trying again can help (None: no failure; False: it waits
    #: for an operator)
    failure_retryable: Mapped[bool | None]
    #: after a failure a retry can help: not tried again before this time (the backoff)
    retry_after: Mapped[datetime | None]


class ChecksumMixin:
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum: Mapped[str | None] = mapped_column(String(128))
    checksum_algorithm: Mapped[str] = mapped_column(String(16), default=DEFAULT_CHECKSUM_ALGORITHM)


class FiledManifest(IdMixin, CreatedMixin, Base):
    """The audit record of one filed manifest (one execution × instrument module)."""

    __tablename__ = "filed_manifest"
    __table_args__ = (UniqueConstraint("executed_obs_unit_id", "instrument_module_id"),)
    executed_obs_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("executed_obs_unit.id"))
    instrument_module_id: Mapped[int] = mapped_column(
        ForeignKey("instrument_module.id"), index=True
    )
    data_location_id: Mapped[int] = mapped_column(ForeignKey("data_location.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    source_name: Mapped[str] = mapped_column(String(255), default="")
    file_count: Mapped[int] = mapped_column(default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class RawDataFile(IdMixin, ChecksumMixin, CreatedMixin, Base):
    """One instrument file, as filed from a manifest.

    A file on SOURCE storage is filed once: its path at its SOURCE location is unique,
    and so is what it is on disk (device and inode), so neither a second manifest nor a
    link under another name can file the same bytes twice. Its modification time is kept
    with them: a later file given the same inode number (the filed one having been
    deleted) has another one. Then the filed file's device is cleared (letting the new
    file in); its inode stays, for the checksum step to tell the filed file from another.
    """

    __tablename__ = "raw_data_file"
    __table_args__ = (
        UniqueConstraint("executed_obs_unit_id", "relative_path"),
        UniqueConstraint("source_location_id", "relative_path"),
        UniqueConstraint(
            "source_location_id",
            "source_device",
            "source_inode",
            name="uq_raw_data_file_source_identity",
        ),
        Index("ix_raw_data_file_state", "state"),
    )
    name: Mapped[str] = mapped_column(String(255))
    relative_path: Mapped[str] = mapped_column(String(1024))
    source_location_id: Mapped[int] = mapped_column(ForeignKey("data_location.id"))
    source_device: Mapped[int | None] = mapped_column(BigInteger)
    source_inode: Mapped[int | None] = mapped_column(BigInteger)
    source_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    file_type: Mapped[str] = mapped_column(String(40), default="")
    state: Mapped[RawDataFileState] = mapped_column(
        state_enum(RawDataFileState), default=RawDataFileState.FILED
    )
    executed_obs_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("executed_obs_unit.id"))
    instrument_module_id: Mapped[int] = mapped_column(
        ForeignKey("instrument_module.id"), index=True
    )
    raw_data_package_id: Mapped[int | None] = mapped_column(
        ForeignKey("raw_data_package.id"), index=True
    )
    #: the job batch whose task works on the file now (state CHECKSUMMING): only it records
    claimed_by_batch_id: Mapped[int | None] = mapped_column(ForeignKey("job_batch.id"), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    extra_metadata: Mapped[dict[str, Any] | None]
    executed_obs_unit: Mapped[ExecutedObsUnit] = relationship(back_populates="raw_data_files")
    instrument_module: Mapped[InstrumentModule] = relationship()
    raw_data_package: Mapped[RawDataPackage | None] = relationship(back_populates="files")


class RawDataFileCheck(IdMixin, Base):
    """One checksum check of a file's SOURCE copy: the history an operator reads after a repair."""

    __tablename__ = "raw_data_file_check"
    raw_data_file_id: Mapped[int] = mapped_column(ForeignKey("raw_data_file.id"), index=True)
    #: indexed: removing a copy checks this foreign key
    physical_copy_id: Mapped[int | None] = mapped_column(ForeignKey("physical_copy.id"), index=True)
    job_batch_id: Mapped[int | None] = mapped_column(ForeignKey("job_batch.id"), index=True)
    checked_at: Mapped[datetime]
    outcome: Mapped[RawDataFileState] = mapped_column(state_enum(RawDataFileState))
    computed_checksum: Mapped[str | None] = mapped_column(String(128))
    expected_checksum: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)


class RawDataPackage(IdMixin, ChecksumMixin, StepItemMixin, CreatedMixin, Base):
    """A tar of the files of one execution × instrument module (split into parts if large)."""

    __tablename__ = "raw_data_package"
    __table_args__ = (
        UniqueConstraint(
            "executed_obs_unit_id",
            "instrument_module_id",
            "part_number",
            name="uq_raw_data_package_part",
        ),
        Index("ix_raw_data_package_state", "state"),
    )
    name: Mapped[str] = mapped_column(String(255), unique=True)
    relative_path: Mapped[str] = mapped_column(String(1024))
    part_number: Mapped[int] = mapped_column(default=0)
    state: Mapped[PackageState] = mapped_column(
        state_enum(PackageState), default=PackageState.PLANNED
    )
    executed_obs_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("executed_obs_unit.id"))
    instrument_module_id: Mapped[int] = mapped_column(
        ForeignKey("instrument_module.id"), index=True
    )
    data_transfer_package_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_transfer_package.id"), index=True
    )
    member_index: Mapped[dict[str, Any] | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    files: Mapped[list[RawDataFile]] = relationship(back_populates="raw_data_package")
    package_metadata: Mapped[RawDataPackageMetadata | None] = relationship(
        back_populates="raw_data_package"
    )
    data_transfer_package: Mapped[DataTransferPackage | None] = relationship(
        back_populates="raw_data_packages"
    )


class RawDataPackageMetadata(IdMixin, Base):
    """IVOA ObsCore-oriented description of a package, for discovery services."""

    __tablename__ = "raw_data_package_metadata"
    raw_data_package_id: Mapped[int] = mapped_column(ForeignKey("raw_data_package.id"), unique=True)
    dataproduct_type: Mapped[str] = mapped_column(String(32), default="")
    calib_level: Mapped[int] = mapped_column(default=0)
    obs_collection: Mapped[str] = mapped_column(String(100), default="")
    obs_id: Mapped[str] = mapped_column(String(100), default="")
    target_name: Mapped[str] = mapped_column(String(100), default="")
    facility_name: Mapped[str] = mapped_column(String(100), default="")
    instrument_name: Mapped[str] = mapped_column(String(100), default="")
    s_ra: Mapped[float | None] = mapped_column(Float)
    s_dec: Mapped[float | None] = mapped_column(Float)
    t_min: Mapped[float | None] = mapped_column(Float)
    t_max: Mapped[float | None] = mapped_column(Float)
    t_exptime: Mapped[float | None] = mapped_column(Float)
    em_min: Mapped[float | None] = mapped_column(Float)
    em_max: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    raw_data_package: Mapped[RawDataPackage] = relationship(back_populates="package_metadata")


class DataTransferPackage(IdMixin, ChecksumMixin, StepItemMixin, CreatedMixin, Base):
    """A tar of RawDataPackages waiting in one BUFFER, moved between sites as one unit."""

    __tablename__ = "data_transfer_package"
    __table_args__ = (Index("ix_data_transfer_package_state", "state"),)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    relative_path: Mapped[str] = mapped_column(String(1024))
    state: Mapped[PackageState] = mapped_column(
        state_enum(PackageState), default=PackageState.PLANNED
    )
    origin_location_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_location.id"), index=True
    )
    #: the route it travels (chosen when it is bundled) and so its destination site
    route_id: Mapped[int | None] = mapped_column(ForeignKey("data_transfer_route.id"), index=True)
    priority: Mapped[int] = mapped_column(default=0)
    member_index: Mapped[dict[str, Any] | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    raw_data_packages: Mapped[list[RawDataPackage]] = relationship(
        back_populates="data_transfer_package"
    )


class DataArchive(IdMixin, CreatedMixin, Base):
    """A named long-term archive (e.g. the CCAT LTA) that LTA DataLocations belong to."""

    __tablename__ = "data_archive"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"), index=True)
    site: Mapped[Site | None] = relationship()


class PhysicalCopy(IdMixin, CreatedMixin, Base):
    """One copy of a file or package at one DataLocation: the audit trail of every byte."""

    __tablename__ = "physical_copy"
    __table_args__ = (Index("ix_physical_copy_location_state", "data_location_id", "state"),)
    type: Mapped[str] = mapped_column(String(40))
    data_location_id: Mapped[int] = mapped_column(ForeignKey("data_location.id"))
    state: Mapped[PhysicalCopyState] = mapped_column(
        state_enum(PhysicalCopyState), default=PhysicalCopyState.PRESENT
    )
    verified_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    #: PROCESSING: staged data is kept until then (the latest expiry of the stagings
    #: that use it; set to the release time when the last one is released)
    expires_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    data_location: Mapped[DataLocation] = relationship()
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "physical_copy"}


class RawDataFilePhysicalCopy(PhysicalCopy):
    __tablename__ = "raw_data_file_physical_copy"
    id: Mapped[int] = mapped_column(ForeignKey("physical_copy.id"), primary_key=True)
    raw_data_file_id: Mapped[int] = mapped_column(ForeignKey("raw_data_file.id"), index=True)
    raw_data_file: Mapped[RawDataFile] = relationship()
    __mapper_args__ = {"polymorphic_identity": "raw_data_file"}


class RawDataPackagePhysicalCopy(PhysicalCopy):
    __tablename__ = "raw_data_package_physical_copy"
    id: Mapped[int] = mapped_column(ForeignKey("physical_copy.id"), primary_key=True)
    raw_data_package_id: Mapped[int] = mapped_column(ForeignKey("raw_data_package.id"), index=True)
    raw_data_package: Mapped[RawDataPackage] = relationship()
    __mapper_args__ = {"polymorphic_identity": "raw_data_package"}


class DataTransferPackagePhysicalCopy(PhysicalCopy):
    __tablename__ = "data_transfer_package_physical_copy"
    id: Mapped[int] = mapped_column(ForeignKey("physical_copy.id"), primary_key=True)
    data_transfer_package_id: Mapped[int] = mapped_column(
        ForeignKey("data_transfer_package.id"), index=True
    )
    data_transfer_package: Mapped[DataTransferPackage] = relationship()
    __mapper_args__ = {"polymorphic_identity": "data_transfer_package"}
