"""Events worth keeping that belong to no single transfer or job."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ccat_hpc.db.base import Base, CreatedMixin, IdMixin, state_enum
from ccat_hpc.db.states import LogLevel


class SystemLog(IdMixin, CreatedMixin, Base):
    """Events worth keeping that belong to no single transfer or job (filing, config loads)."""

    __tablename__ = "system_log"
    __table_args__ = (Index("ix_system_log_created_at", "created_at"),)
    level: Mapped[LogLevel] = mapped_column(state_enum(LogLevel), default=LogLevel.INFO)
    source: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
