"""Staging requests as people see them: one request's state, folder and log, and lists.

``ccat-hpc stage status|list`` and the REST API show the same dictionaries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import DataLocation, DiskDataLocation, StagingJob, StagingJobLog, User
from ccat_hpc.errors import NotFoundError
from ccat_hpc.inventory.common import Page, check_limit
from ccat_hpc.pipeline.staging_request import LIVE

#: the longest list of requests shown at once
MAX_LISTED = 500
#: states after which a request changes no more
FINAL = ("staged", "failed", "cancelled", "released")


def marker(state: str) -> str:
    """What the request's folder shows for ``state``: READY, FAILED, STAGING or -."""
    return {"staged": "READY", "failed": "FAILED"}.get(
        state, "STAGING" if state in ("pending", "submitted", "staging", "retry_wait") else "-"
    )


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def location_root(session: Session, staging_id: int) -> str:
    """The root folder of the request's PROCESSING location ('' if it has none)."""
    job = session.get_one(StagingJob, staging_id)
    location = session.get(DiskDataLocation, job.destination_location_id)
    return "" if location is None else str(location.path)


def owner_of(session: Session, staging_id: int) -> str | None:
    """The user name of the request's owner; NotFoundError if there is no such request."""
    job = session.get(StagingJob, staging_id)
    if job is None:
        raise NotFoundError(f"no staging request {staging_id}")
    user = session.get(User, job.user_id) if job.user_id else None
    return None if user is None else user.username


def _shown(job: StagingJob, owner: str | None, location: str, root: str | None) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "user": owner,
        "state": job.state.value,
        "marker": marker(job.state.value),
        "folder": f"{root}/{job.destination_path}" if root else job.destination_path,
        "location": location,
        "files": job.file_count,
        "bytes": job.total_bytes,
        "selection": job.selection,
        "attempts": job.attempts,
        "created_at": _when(job.created_at),
        "started_at": _when(job.started_at),
        "finished_at": _when(job.finished_at),
        "release_after": _when(job.release_after),
        "retry_after": _when(job.retry_after),
        "reason": job.failure_reason,
    }


def _rows() -> Select[StagingJob, str | None, str, str | None]:
    disk = DiskDataLocation.__table__  # the root of a folder location (none for others)
    return (
        select(StagingJob, User.username, DataLocation.name, disk.c.path)
        .outerjoin(User, User.id == StagingJob.user_id)
        .join(DataLocation, DataLocation.id == StagingJob.destination_location_id)
        .outerjoin(disk, disk.c.id == StagingJob.destination_location_id)
    )


def describe(session: Session, staging_id: int) -> dict[str, Any]:
    """One request: its state, marker, folder, files, times, reason and log."""
    found = session.execute(_rows().where(StagingJob.id == staging_id)).one_or_none()
    if found is None:
        raise NotFoundError(f"no staging request {staging_id}")
    logs = session.scalars(
        select(StagingJobLog)
        .where(StagingJobLog.staging_job_id == staging_id)
        .order_by(StagingJobLog.id)
    )
    job, owner, location, root = found
    return _shown(job, owner, location, root) | {
        "log": [f"{_when(row.created_at)} {row.level.value}: {row.message}" for row in logs]
    }


def list_requests(
    session: Session,
    user: str | None = None,
    *,
    show_all: bool = False,
    limit: int = MAX_LISTED,
    after: int | None = None,
) -> Page[dict[str, Any]]:
    """Requests newest first (live ones unless ``show_all``), of ``user`` when given,
    without their logs; ``after``: ids below it (the next page). One query."""
    check_limit(limit)
    query = _rows().order_by(StagingJob.id.desc()).limit(limit + 1)
    if user is not None:
        query = query.where(User.username == user)
    if not show_all:
        query = query.where(StagingJob.state.in_(LIVE))
    if after is not None:
        query = query.where(StagingJob.id < after)
    rows = [_shown(job, owner, place, root) for job, owner, place, root in session.execute(query)]
    more = len(rows) > limit
    return Page(rows[:limit], rows[limit - 1]["id"] if more else None)
