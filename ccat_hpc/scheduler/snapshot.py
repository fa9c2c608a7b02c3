"""The scheduler's view of ops-db: items waiting per step and the batches not ended.

Every count goes through a state index and touches only rows still in the pipeline
(waiting or in flight), never the archived history, so a pass stays fast however many
years of data ops-db holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import DataTransferPackage, JobBatch, RawDataFile, RawDataPackage
from ccat_hpc.db.states import JobBatchState, PackageState, RawDataFileState
from ccat_hpc.pipeline.step_items import ready_now
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


def open_batches(session: Session) -> list[OpenBatch]:
    rows = session.execute(
        select(JobBatch.id, JobBatch.kind, JobBatch.executor)
        .where(JobBatch.state.in_(OPEN_BATCH_STATES))
        .order_by(JobBatch.id)
    ).all()
    return [OpenBatch(i, kind, executor) for i, kind, executor in rows]


def take_snapshot(session: Session, steps: Sequence[str] = STEPS) -> Snapshot:
    return Snapshot(waiting_items(session), open_batches(session), tuple(steps))
