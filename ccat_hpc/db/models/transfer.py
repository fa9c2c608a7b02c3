"""Movements of data: buffer-to-buffer transfers and long-term-archive transfers, with logs.

Status lives in ops-db; the full output of the command that did the work stays in a
log file whose path the log row records.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccat_hpc.db.base import Base, CreatedMixin, IdMixin, state_enum
from ccat_hpc.db.models.data import DataTransferPackage, RawDataPackage
from ccat_hpc.db.models.storage import DataLocation, DataTransferRoute
from ccat_hpc.db.states import LogLevel, TransferState


class AttemptMixin:
    """Columns every retried piece of work has."""

    state: Mapped[TransferState] = mapped_column(
        state_enum(TransferState), default=TransferState.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    retry_after: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    #: indexed: the scheduler reads the recent attempts of each endpoint (its breakers)
    finished_at: Mapped[datetime | None] = mapped_column(index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    #: after a failure: whether trying again can help (None: its task died, so the
    #: endpoint is not to blame)
    failure_retryable: Mapped[bool | None]
    bytes_transferred: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the job batch that did the move
    job_batch_id: Mapped[int | None] = mapped_column(ForeignKey("job_batch.id"), index=True)


class LogMixin:
    level: Mapped[LogLevel] = mapped_column(state_enum(LogLevel), default=LogLevel.INFO)
    message: Mapped[str] = mapped_column(Text)
    log_path: Mapped[str | None] = mapped_column(String(1024))


class DataTransfer(IdMixin, CreatedMixin, AttemptMixin, Base):
    """Moving one DataTransferPackage from one site's buffer to another's."""

    __tablename__ = "data_transfer"
    __table_args__ = (Index("ix_data_transfer_state", "state"),)
    data_transfer_package_id: Mapped[int] = mapped_column(
        ForeignKey("data_transfer_package.id"), index=True
    )
    route_id: Mapped[int | None] = mapped_column(ForeignKey("data_transfer_route.id"), index=True)
    origin_location_id: Mapped[int] = mapped_column(ForeignKey("data_location.id"), index=True)
    destination_location_id: Mapped[int] = mapped_column(ForeignKey("data_location.id"), index=True)
    data_transfer_package: Mapped[DataTransferPackage] = relationship()
    route: Mapped[DataTransferRoute | None] = relationship()
    origin_location: Mapped[DataLocation] = relationship(foreign_keys=[origin_location_id])
    destination_location: Mapped[DataLocation] = relationship(
        foreign_keys=[destination_location_id]
    )
    logs: Mapped[list[DataTransferLog]] = relationship(back_populates="data_transfer")


class DataTransferLog(IdMixin, CreatedMixin, LogMixin, Base):
    __tablename__ = "data_transfer_log"
    data_transfer_id: Mapped[int] = mapped_column(ForeignKey("data_transfer.id"), index=True)
    data_transfer: Mapped[DataTransfer] = relationship(back_populates="logs")


class LongTermArchiveTransfer(IdMixin, CreatedMixin, AttemptMixin, Base):
    """Archiving one RawDataPackage from a buffer into a LONG_TERM_ARCHIVE location."""

    __tablename__ = "long_term_archive_transfer"
    __table_args__ = (Index("ix_long_term_archive_transfer_state", "state"),)
    raw_data_package_id: Mapped[int] = mapped_column(ForeignKey("raw_data_package.id"), index=True)
    origin_location_id: Mapped[int] = mapped_column(ForeignKey("data_location.id"), index=True)
    destination_location_id: Mapped[int] = mapped_column(ForeignKey("data_location.id"), index=True)
    raw_data_package: Mapped[RawDataPackage] = relationship()
    origin_location: Mapped[DataLocation] = relationship(foreign_keys=[origin_location_id])
    destination_location: Mapped[DataLocation] = relationship(
        foreign_keys=[destination_location_id]
    )
    logs: Mapped[list[LongTermArchiveTransferLog]] = relationship(
        back_populates="long_term_archive_transfer"
    )


class LongTermArchiveTransferLog(IdMixin, CreatedMixin, LogMixin, Base):
    __tablename__ = "long_term_archive_transfer_log"
    long_term_archive_transfer_id: Mapped[int] = mapped_column(
        ForeignKey("long_term_archive_transfer.id"), index=True
    )
    long_term_archive_transfer: Mapped[LongTermArchiveTransfer] = relationship(
        back_populates="logs"
    )
