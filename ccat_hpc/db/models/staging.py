"""Staging: scientists' requests to bring archived packages to PROCESSING storage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccat_hpc.db.base import Base, BigIntPK, CreatedMixin, IdMixin, state_enum
from ccat_hpc.db.models.auth import User
from ccat_hpc.db.models.data import RawDataPackage
from ccat_hpc.db.models.storage import DataLocation
from ccat_hpc.db.models.transfer import LogMixin
from ccat_hpc.db.states import StagingJobState

staging_job_raw_data_package = Table(
    "staging_job_raw_data_package",
    Base.metadata,
    Column("staging_job_id", BigIntPK, ForeignKey("staging_job.id"), primary_key=True),
    Column("raw_data_package_id", BigIntPK, ForeignKey("raw_data_package.id"), primary_key=True),
)


class StagingJob(IdMixin, CreatedMixin, Base):
    __tablename__ = "staging_job"
    __table_args__ = (Index("ix_staging_job_state", "state"),)
    name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[StagingJobState] = mapped_column(
        state_enum(StagingJobState), default=StagingJobState.PENDING
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    destination_location_id: Mapped[int] = mapped_column(ForeignKey("data_location.id"), index=True)
    destination_path: Mapped[str] = mapped_column(String(1024), default="")
    attempts: Mapped[int] = mapped_column(default=0)
    retry_after: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    release_after: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    user: Mapped[User | None] = relationship()
    destination_location: Mapped[DataLocation] = relationship()
    raw_data_packages: Mapped[list[RawDataPackage]] = relationship(
        secondary=staging_job_raw_data_package
    )
    logs: Mapped[list[StagingJobLog]] = relationship(back_populates="staging_job")


class StagingJobLog(IdMixin, CreatedMixin, LogMixin, Base):
    __tablename__ = "staging_job_log"
    staging_job_id: Mapped[int] = mapped_column(ForeignKey("staging_job.id"), index=True)
    staging_job: Mapped[StagingJob] = relationship(back_populates="logs")
