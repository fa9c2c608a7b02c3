"""The scheduler's view of ops-db: items waiting per step and the batches not ended.

Every count goes through a state index and touches only rows still in the pipeline
(waiting or in flight), never the archived history, so a pass stays fast however many
years of data ops-db holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    Campaign,
    CampaignItem,
    CircuitBreaker,
    DataLocation,
    DataTransfer,
    DataTransferPackage,
    DataTransferRoute,
    JobBatch,
    LongTermArchiveTransfer,
    RawDataFile,
    RawDataPackage,
    Site,
)
from ccat_hpc.db.states import (
    CampaignState,
    JobBatchState,
    PackageState,
    RawDataFileState,
    TransferState,
)
from ccat_hpc.jobs.campaign_batch import ready_items
from ccat_hpc.jobs.stage_batch import ready_condition
from ccat_hpc.pipeline.campaigns import campaign_has_open_items
from ccat_hpc.pipeline.endpoints import LOCATION, ROUTE, EndpointKey, archive_endpoints
from ccat_hpc.pipeline.placement import buffer_fills
from ccat_hpc.pipeline.step_items import ready_now
from ccat_hpc.scheduler.breakers import Attempt, Breaker, BreakerPolicy
from ccat_hpc.scheduler.plan import STEPS, OpenBatch, Snapshot

OPEN_BATCH_STATES = (JobBatchState.PENDING, JobBatchState.SUBMITTED, JobBatchState.RUNNING)


def _count(session: Session, query: object) -> int:
    return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def waiting_items(session: Session) -> dict[str, int]:
    """Items each step would take now (files, packages or transfer packages)."""
    files = RawDataFile
    rdp = RawDataPackage
    dtp = DataTransferPackage
    return {
        "checksum": _count(
            session, select(func.count()).where(files.state == RawDataFileState.FILED)
        ),
        "package": _count(
            session,
            select(func.count()).where(
                files.state == RawDataFileState.CHECKSUMMED, files.raw_data_package_id.is_(None)
            ),
        )
        + _count(
            session,
            select(func.count()).where(rdp.state == PackageState.PLANNED, ready_now(rdp)),
        ),
        "bundle": _count(
            session,
            select(func.count()).where(
                rdp.state == PackageState.BUILT, rdp.data_transfer_package_id.is_(None)
            ),
        )
        + _count(
            session,
            select(func.count()).where(dtp.state == PackageState.PLANNED, ready_now(dtp)),
        ),
        "transfer": _count(
            session,
            select(func.count()).where(
                dtp.state == PackageState.BUILT, dtp.route_id.is_not(None), ready_now(dtp)
            ),
        ),
        "archive": _count(
            session,
            select(func.count()).where(dtp.state == PackageState.TRANSFERRED, ready_now(dtp)),
        ),
    }


#: minutes between cleanup runs of a site that does not say
DEFAULT_CLEANUP_MINUTES = 60.0


def stagings_ready(session: Session) -> int:
    """Staging requests waiting to be staged (new, or past their backoff)."""
    return _count(session, select(func.count()).where(ready_condition()))


def _pipelines(session: Session) -> list[dict[str, Any]]:
    """Every site's pipeline settings."""
    return [
        (settings or {}).get("pipeline", {}) for settings in session.scalars(select(Site.settings))
    ]


def _periodic_due(session: Session, now: datetime, kind: str, intervals: list[float]) -> int:
    """1 when some package is archived and the shortest of ``intervals`` (minutes) has
    passed since the last ``kind`` batch was created (or none ever was), else 0; 0 too
    without intervals."""
    archived = select(RawDataPackage.id).where(RawDataPackage.state == PackageState.ARCHIVED)
    if not intervals or session.scalar(archived.limit(1)) is None:
        return 0
    last = session.scalar(select(func.max(JobBatch.created_at)).where(JobBatch.kind == kind))
    return int(last is None or now - last >= timedelta(minutes=min(intervals)))


def cleanup_due(session: Session, now: datetime) -> int:
    """Whether cleanup is due: the shortest cleanup interval of the sites (cleanup
    deletes nothing that has no archive copy, so never before a package is archived)."""
    intervals = [float(p.get("cleanup_interval_minutes", 60.0)) for p in _pipelines(session)]
    return _periodic_due(session, now, "cleanup", intervals or [DEFAULT_CLEANUP_MINUTES])


def scrub_due(session: Session, now: datetime) -> int:
    """Whether the scrub is due: the shortest scrub interval of the sites that scrub (a
    budget above 0)."""
    intervals = [
        float(p.get("scrub_interval_minutes", 60.0))
        for p in _pipelines(session)
        if int(p.get("scrub_bytes_per_day", 10**12)) > 0
    ]
    return _periodic_due(session, now, "scrub", intervals)


def campaign_items_waiting(session: Session) -> int:
    """Items of ACTIVE campaigns not yet taken; plus ACTIVE campaigns with no item left
    (the campaign step closes them: DONE)."""
    pending = _count(
        session,
        select(func.count(CampaignItem.id))
        .join(Campaign, Campaign.id == CampaignItem.campaign_id)
        .where(Campaign.state == CampaignState.ACTIVE, ready_items()),
    )
    open_items = campaign_has_open_items()
    finished = _count(
        session,
        select(func.count(Campaign.id)).where(Campaign.state == CampaignState.ACTIVE, ~open_items),
    )
    return pending + finished


def open_batches(session: Session) -> list[OpenBatch]:
    rows = session.execute(
        select(JobBatch.id, JobBatch.kind, JobBatch.executor)
        .where(JobBatch.state.in_(OPEN_BATCH_STATES))
        .order_by(JobBatch.id)
    ).all()
    return [OpenBatch(i, kind, executor) for i, kind, executor in rows]


def breakers(session: Session) -> list[Breaker]:
    rows = session.scalars(select(CircuitBreaker).order_by(CircuitBreaker.id))
    return [
        Breaker(
            EndpointKey(row.scope, row.target_id, row.name),
            row.name,
            row.state,
            row.opened_at,
            row.half_opened_at,
            row.closed_at,
            row.reason,
        )
        for row in rows
    ]


def recent_attempts(session: Session, since: datetime) -> list[Attempt]:
    """Transfer hops (by route) and uploads (by archive location) that ended after
    ``since``: successes, failures a retry can help (the endpoint's kind), and attempts
    whose task died (``failure_retryable`` None). Failures of the item itself (a damaged
    copy, a refused file) say nothing about the endpoint and are left out."""
    succeeded, failed = TransferState.SUCCEEDED, TransferState.FAILED
    attempts: list[Attempt] = []
    for model, scope, target, name in (
        (DataTransfer, ROUTE, DataTransferRoute.id, DataTransferRoute.name),
        (LongTermArchiveTransfer, LOCATION, DataLocation.id, DataLocation.name),
    ):
        on = (
            DataTransferRoute.id == DataTransfer.route_id
            if scope == ROUTE
            else DataLocation.id == LongTermArchiveTransfer.destination_location_id
        )
        rows = session.execute(
            select(target, name, model.finished_at, model.state, model.failure_reason)
            .add_columns(model.failure_retryable)
            .join_from(model, target.table, on)
            .where(
                model.finished_at > since,
                (model.state == succeeded)
                | ((model.state == failed) & model.failure_retryable.is_not(False)),
            )
        ).all()
        attempts += [
            Attempt(
                EndpointKey(scope, i, n),
                at,
                state == succeeded,
                reason or "",
                died=state == failed and retryable is None,
            )
            for i, n, at, state, reason, retryable in rows
            if at is not None
        ]
    return attempts


def waiting_at_endpoints(session: Session) -> dict[str, dict[EndpointKey, int]]:
    """Items ready for transfer (by route) and for the archive (by archive location)."""
    dtp = DataTransferPackage
    by_route = session.execute(
        select(DataTransferRoute.id, DataTransferRoute.name, func.count())
        .join(dtp, dtp.route_id == DataTransferRoute.id)
        .where(dtp.state == PackageState.BUILT, ready_now(dtp))
        .group_by(DataTransferRoute.id, DataTransferRoute.name)
    ).all()
    arrived = list(
        session.scalars(select(dtp.id).where(dtp.state == PackageState.TRANSFERRED, ready_now(dtp)))
    )
    by_archive: dict[EndpointKey, int] = {}
    for key in archive_endpoints(session, arrived).values():
        by_archive[key] = by_archive.get(key, 0) + 1
    return {
        "transfer": {EndpointKey(ROUTE, i, n): count for i, n, count in by_route},
        "archive": by_archive,
    }


def take_snapshot(
    session: Session,
    steps: Sequence[str] = STEPS,
    policy: BreakerPolicy | None = None,
    now: datetime | None = None,
) -> Snapshot:
    policy = policy or BreakerPolicy()
    now = now or utcnow()
    # an open breaker's probe may have ended before the window: look back far enough
    since = now - timedelta(seconds=max(policy.window_seconds, policy.cooldown_seconds) * 2)
    return Snapshot(
        waiting_items(session)
        | {
            "stage": stagings_ready(session),
            "cleanup": cleanup_due(session, now),
            "scrub": scrub_due(session, now),
            "campaign": campaign_items_waiting(session),
        },
        open_batches(session),
        tuple(steps),
        now=now,
        policy=policy,
        breakers=breakers(session),
        attempts=recent_attempts(session, since),
        waiting_at=waiting_at_endpoints(session),
        buffers=buffer_fills(session),
    )
