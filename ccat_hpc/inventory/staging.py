"""Staging requests as people see them: one request's state, folder and log, and lists.

``ccat-hpc stage status|list`` and the REST API show the same dictionaries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import DiskDataLocation, StagingJob, StagingJobLog, User
from ccat_hpc.errors import NotFoundError
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


def describe(session: Session, staging_id: int) -> dict[str, Any]:
    """One request: its state, marker, folder, files, times, reason and log."""
    owner = owner_of(session, staging_id)
    job = session.get_one(StagingJob, staging_id)
    root = location_root(session, staging_id)
    logs = session.scalars(
        select(StagingJobLog)
        .where(StagingJobLog.staging_job_id == job.id)
        .order_by(StagingJobLog.id)
    )
    return {
        "id": job.id,
        "name": job.name,
        "user": owner,
        "state": job.state.value,
        "marker": marker(job.state.value),
        "folder": f"{root}/{job.destination_path}" if root else job.destination_path,
        "location": job.destination_location.name,
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
        "log": [f"{_when(row.created_at)} {row.level.value}: {row.message}" for row in logs],
    }


def list_requests(
    session: Session, user: str | None = None, *, show_all: bool = False
) -> list[dict[str, Any]]:
    """Requests newest first (live ones unless ``show_all``), of ``user`` when given."""
    query = select(StagingJob.id).order_by(StagingJob.id.desc()).limit(MAX_LISTED)
    if user is not None:
        query = query.join(User, User.id == StagingJob.user_id).where(User.username == user)
    if not show_all:
        query = query.where(StagingJob.state.in_(LIVE))
    return [describe(session, i) for i in session.scalars(query)]
