"""Staging: scientists' requests to bring archived data to PROCESSING storage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, Text
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

#: the files a staging asked for (all of an observation's, or those its glob matched)
staging_job_file = Table(
    "staging_job_file",
    Base.metadata,
    Column("staging_job_id", BigIntPK, ForeignKey("staging_job.id"), primary_key=True),
    Column(
        "raw_data_file_id", BigIntPK, ForeignKey("raw_data_file.id"), primary_key=True, index=True
    ),
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
    #: the request's folder, relative to the PROCESSING location's root
    destination_path: Mapped[str] = mapped_column(String(1024), default="")
    #: what the scientist asked for (program, obs unit, source, instrument, time, ids, glob)
    selection: Mapped[dict[str, Any]] = mapped_column(default=dict)
    file_count: Mapped[int] = mapped_column(default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the job batch whose task stages it now; only that batch records it
    claimed_by_batch_id: Mapped[int | None] = mapped_column(ForeignKey("job_batch.id"), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    retry_after: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: the staged data is kept until then, unless released earlier
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
