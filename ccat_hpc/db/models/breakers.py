"""Circuit breakers: one row per endpoint (a route, or a location) that has ever tripped.

An endpoint without a row is CLOSED. The scheduler opens a breaker when the endpoint's
attempts keep failing, so it stops sending work there; the row survives restarts, and
an operator can reset it (``ccat-hpc breaker reset``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccat_hpc.db.base import Base, CreatedMixin, IdMixin, state_enum
from ccat_hpc.db.states import BreakerState


class CircuitBreaker(IdMixin, CreatedMixin, Base):
    """The breaker of one route (``scope`` "route") or one DataLocation ("location")."""

    __tablename__ = "circuit_breaker"
    __table_args__ = (UniqueConstraint("scope", "target_id"),)
    scope: Mapped[str] = mapped_column(String(20))
    #: the id of the route or location
    target_id: Mapped[int]
    #: its name, for people (routes and locations are named uniquely)
    name: Mapped[str] = mapped_column(String(100))
    state: Mapped[BreakerState] = mapped_column(
        state_enum(BreakerState), default=BreakerState.CLOSED
    )
    #: failures counted when it last opened, and the last of their reasons
    failures: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime | None]
    half_opened_at: Mapped[datetime | None]
    #: failures before this moment no longer count (the last close or reset)
    closed_at: Mapped[datetime | None]
