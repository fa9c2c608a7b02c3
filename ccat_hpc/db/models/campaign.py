"""Operators' bulk campaigns and the integrity checks of archive copies.

A Campaign is one piece of bulk work over a selection (re-archive, re-verify,
re-stage), run as throttled job arrays; each CampaignItem is one package (or, for
re-stage, one observation) with its outcome. A PhysicalCopyCheck is one full re-read of
a copy's bytes (by the scrub or a re-verify campaign): what was found, when, and how
many bytes it cost.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccat_hpc.db.base import Base, CreatedMixin, IdMixin, state_enum
from ccat_hpc.db.models.storage import DataLocation
from ccat_hpc.db.states import CampaignItemState, CampaignState, PhysicalCopyState


class Campaign(IdMixin, CreatedMixin, Base):
    __tablename__ = "campaign"
    __table_args__ = (Index("ix_campaign_state", "state"),)
    #: re-archive, re-verify or re-stage
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[CampaignState] = mapped_column(
        state_enum(CampaignState), default=CampaignState.ACTIVE
    )
    #: what the operator selected (site, location, time range, instrument, state, ...)
    selection: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: where the work goes: the archive written (re-archive), checked (re-verify), or
    #: the PROCESSING location staged to (re-stage)
    target_location_id: Mapped[int | None] = mapped_column(ForeignKey("data_location.id"))
    #: at most this share of the site's task slots runs the campaign's tasks
    slot_share: Mapped[float] = mapped_column(Float, default=0.25)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    item_count: Mapped[int] = mapped_column(default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    finished_at: Mapped[datetime | None]
    #: why it was paused or cancelled
    note: Mapped[str | None] = mapped_column(Text)
    target_location: Mapped[DataLocation | None] = relationship()
    items: Mapped[list[CampaignItem]] = relationship(back_populates="campaign")


class CampaignItem(IdMixin, Base):
    __tablename__ = "campaign_item"
    __table_args__ = (Index("ix_campaign_item_campaign_id_state", "campaign_id", "state"),)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    raw_data_package_id: Mapped[int | None] = mapped_column(
        ForeignKey("raw_data_package.id"), index=True
    )
    executed_obs_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("executed_obs_unit.id")
    )
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[CampaignItemState] = mapped_column(
        state_enum(CampaignItemState), default=CampaignItemState.PENDING
    )
    #: what was found and done: verified, repaired, copied, present, staged, ...
    outcome: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    claimed_by_batch_id: Mapped[int | None] = mapped_column(ForeignKey("job_batch.id"), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    #: a try that met an outage waits until then
    retry_after: Mapped[datetime | None]
    #: the staging request a re-stage item made
    staging_job_id: Mapped[int | None] = mapped_column(ForeignKey("staging_job.id"))
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
    finished_at: Mapped[datetime | None]
    campaign: Mapped[Campaign] = relationship(back_populates="items")


class PhysicalCopyCheck(IdMixin, Base):
    """One full re-read of a copy's bytes against its item's checksum and size."""

    __tablename__ = "physical_copy_check"
    __table_args__ = (Index("ix_physical_copy_check_checked_at", "checked_at"),)
    physical_copy_id: Mapped[int] = mapped_column(ForeignKey("physical_copy.id"), index=True)
    checked_at: Mapped[datetime]
    #: VERIFIED, CORRUPT or MISSING
    outcome: Mapped[PhysicalCopyState] = mapped_column(state_enum(PhysicalCopyState))
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
    #: "scrub", or "campaign N"
    checked_by: Mapped[str] = mapped_column(String(40), default="")
    reason: Mapped[str | None] = mapped_column(Text)
