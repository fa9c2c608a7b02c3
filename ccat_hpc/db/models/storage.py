"""Where data lives: sites, data locations (disk, S3, tape) and the routes between sites."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccat_hpc.db.base import Base, CreatedMixin, IdMixin, state_enum
from ccat_hpc.db.states import LocationType, RouteType, StorageType


class Site(IdMixin, CreatedMixin, Base):
    """A physical site (Chile, Cologne, ...) with its retention and Slurm settings."""

    __tablename__ = "site"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    short_name: Mapped[str] = mapped_column(String(20), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    geographic_location: Mapped[str] = mapped_column(String(200), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    locations: Mapped[list[DataLocation]] = relationship(back_populates="site")


class DataLocation(IdMixin, CreatedMixin, Base):
    """A place that holds copies of data, of one LocationType and one storage kind."""

    __tablename__ = "data_location"
    __table_args__ = (Index("ix_data_location_site_type", "site_id", "location_type"),)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    storage_type: Mapped[StorageType] = mapped_column(state_enum(StorageType))
    location_type: Mapped[LocationType] = mapped_column(state_enum(LocationType))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    priority: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    retention_days: Mapped[int | None]
    #: bytes the location may hold (a BUFFER over its fill level is passed over); None:
    #: no limit is tracked
    capacity_bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: PROCESSING: bytes one user's stagings may hold at once; None: no quota
    user_quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Name of the instrument a SOURCE location belongs to (matched at filing time; a name,
    # not a key, because sites are loaded before the catalog).
    instrument_name: Mapped[str | None] = mapped_column(String(100))
    data_archive_id: Mapped[int | None] = mapped_column(ForeignKey("data_archive.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    site: Mapped[Site] = relationship(back_populates="locations")
    __mapper_args__ = {"polymorphic_on": "storage_type"}


class DiskDataLocation(DataLocation):
    """A POSIX folder (local disk, NFS, Lustre, GPFS)."""

    __tablename__ = "disk_data_location"
    id: Mapped[int] = mapped_column(ForeignKey("data_location.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024))
    host: Mapped[str] = mapped_column(String(255), default="")
    __mapper_args__ = {"polymorphic_identity": StorageType.DISK}


class S3DataLocation(DataLocation):
    """A bucket (and key prefix) on an S3-compatible object store."""

    __tablename__ = "s3_data_location"
    id: Mapped[int] = mapped_column(ForeignKey("data_location.id"), primary_key=True)
    endpoint_url: Mapped[str] = mapped_column(String(1024))
    bucket: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(String(1024), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    __mapper_args__ = {"polymorphic_identity": StorageType.S3}


class TapeDataLocation(DataLocation):
    """A tape library, reached through a staging mount."""

    __tablename__ = "tape_data_location"
    id: Mapped[int] = mapped_column(ForeignKey("data_location.id"), primary_key=True)
    library: Mapped[str] = mapped_column(String(255))
    mount_path: Mapped[str] = mapped_column(String(1024), default="")
    __mapper_args__ = {"polymorphic_identity": StorageType.TAPE}


class DataTransferRoute(IdMixin, CreatedMixin, Base):
    """How data goes from one site to another.

    DIRECT: origin → destination. RELAY: origin → relay site → destination (two hops,
    each a direct route). CUSTOM: pins the exact origin and destination locations,
    overriding the default choice of buffers.
    """

    __tablename__ = "data_transfer_route"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    route_type: Mapped[RouteType] = mapped_column(state_enum(RouteType))
    origin_site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    destination_site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    relay_site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"), index=True)
    origin_location_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_location.id"), index=True
    )
    destination_location_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_location.id"), index=True
    )
    method: Mapped[str] = mapped_column(String(40), default="rsync")
    priority: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    origin_site: Mapped[Site] = relationship(foreign_keys=[origin_site_id])
    destination_site: Mapped[Site] = relationship(foreign_keys=[destination_site_id])
    relay_site: Mapped[Site | None] = relationship(foreign_keys=[relay_site_id])
    origin_location: Mapped[DataLocation | None] = relationship(foreign_keys=[origin_location_id])
    destination_location: Mapped[DataLocation | None] = relationship(
        foreign_keys=[destination_location_id]
    )
