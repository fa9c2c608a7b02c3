"""A scientist's staging request: what they asked for, the files it means, the quota,
and its end (release, or expiry).

A request names observations the way a scientist knows them (observing program, obs
unit, source, instrument and module, a time range, or execution ids) and optionally a
glob on the file paths. It is refused, with the numbers, when it would take the user
past their quota at the PROCESSING location, counting only files they do not hold
staged already. Releasing a request (or its expiry) removes its folder; the staged
files it used expire then unless another live request uses them, and cleanup deletes
them after that.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import stat
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataLocation,
    DiskDataLocation,
    ExecutedObsUnit,
    ObservingProgram,
    ObsUnit,
    PhysicalCopy,
    RawDataFile,
    RawDataFilePhysicalCopy,
    Source,
    StagingJob,
    User,
)
from ccat_hpc.db.models.staging import staging_job_file, staging_job_raw_data_package
from ccat_hpc.db.states import LocationType, PhysicalCopyState, RawDataFileState, StagingJobState
from ccat_hpc.db.transitions import in_chunks, move
from ccat_hpc.errors import CcatHpcError, NotFoundError, StateConflict, UsageError
from ccat_hpc.inventory import lookup
from ccat_hpc.inventory.observations import (
    ObservationFilter,
    catalog_conditions,
    time_conditions,
)
from ccat_hpc.names import unknown_name_message
from ccat_hpc.paths import relative_path_problem
from ccat_hpc.pipeline.retry import RetryPolicy
from ccat_hpc.pipeline.staging_layout import request_folder

S = StagingJobState
#: a request holds its files (and counts against the quota) in these states
LIVE = (S.PENDING, S.SUBMITTED, S.STAGING, S.RETRY_WAIT, S.STAGED)
DEFAULT_DAYS = 14
#: the most files the observations of one request may hold (before --files narrows them)
MAX_SELECTED_FILES = 500_000


class QuotaExceeded(CcatHpcError):
    """A request that would take a user past their quota at a PROCESSING location."""

    exit_code = 10


def given_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of a selection that were given, as JSON (times in ISO 8601, tuples as
    lists of strings); what was not given is left out."""
    shown: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, datetime):
            shown[name] = value.isoformat()
        elif isinstance(value, tuple):
            if value:
                shown[name] = [str(v) for v in value]
        elif value is not None:
            shown[name] = value
    return shown


@dataclass(frozen=True)
class Selection:
    """What a scientist asks for; every given field narrows it (at least one is needed)."""

    program: str | None = None
    obs_unit: str | None = None
    source: str | None = None
    instrument: str | None = None
    module: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    executions: tuple[uuid.UUID, ...] = ()
    #: a shell-style pattern on the files' paths (``*`` crosses folders too)
    files: str | None = None

    def as_json(self) -> dict[str, Any]:
        return given_fields(self.__dict__)

    @property
    def empty(self) -> bool:
        """No observation is named (a glob alone would search every file ever filed)."""
        return not {k for k in self.as_json() if k != "files"}


@dataclass(frozen=True)
class WantedFile:
    id: int
    relative_path: str
    size: int
    state: RawDataFileState
    package_id: int | None


def _conditions(session: Session, wanted: Selection) -> list[ColumnElement[bool]]:
    """The observation list's conditions, a module on the files, a source, ids."""
    observations = ObservationFilter(
        wanted.program, wanted.obs_unit, wanted.instrument, None, wanted.since, wanted.until
    )
    conditions = catalog_conditions(session, observations) + time_conditions(observations)
    if wanted.module is not None:
        instrument = (
            None if wanted.instrument is None else lookup.instrument_id(session, wanted.instrument)
        )
        modules = lookup.module_ids(session, wanted.module, instrument)
        conditions.append(RawDataFile.instrument_module_id.in_(modules))
    if wanted.source is not None:
        source = session.scalars(select(Source.id).where(Source.name == wanted.source)).first()
        if source is None:
            known = list(session.scalars(select(Source.name)))
            raise NotFoundError(unknown_name_message("source", wanted.source, known))
        conditions.append(ObsUnit.source_id == source)
    if wanted.executions:
        conditions.append(ExecutedObsUnit.id.in_(wanted.executions))
    return conditions


def select_files(session: Session, wanted: Selection) -> list[WantedFile]:
    """Every file of the observations selected (matching the glob), by path."""
    if wanted.empty:
        raise UsageError(
            "say what to stage: --program, --obs-unit, --source, --instrument, --module, "
            "--since/--until or --execution (and --files GLOB to take some files only)"
        )
    query = (
        select(
            RawDataFile.id,
            RawDataFile.relative_path,
            RawDataFile.size,
            RawDataFile.state,
            RawDataFile.raw_data_package_id,
        )
        .join(ExecutedObsUnit, ExecutedObsUnit.id == RawDataFile.executed_obs_unit_id)
        .join(ObsUnit, ObsUnit.id == ExecutedObsUnit.obs_unit_id)
        .join(ObservingProgram, ObservingProgram.id == ObsUnit.observing_program_id)
        .where(*_conditions(session, wanted))
        .order_by(RawDataFile.relative_path)
    )
    count = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    if (count or 0) > MAX_SELECTED_FILES:
        raise UsageError(
            f"the selection names {count} files, more than {MAX_SELECTED_FILES} in one "
            "request: narrow it (--since/--until, --module, --execution) or ask in parts"
        )
    found = [WantedFile(*row) for row in session.execute(query)]
    if wanted.files is not None:
        found = [f for f in found if fnmatch.fnmatchcase(f.relative_path, wanted.files)]
    return found


def processing_location(session: Session, name: str | None) -> DataLocation:
    """The PROCESSING location called ``name``, or the only active one."""
    query = select(DataLocation).where(
        DataLocation.location_type == LocationType.PROCESSING, DataLocation.active.is_(True)
    )
    places = list(session.scalars(query.order_by(DataLocation.priority, DataLocation.id)))
    if name is not None:
        chosen = [p for p in places if p.name == name]
        if not chosen:
            raise NotFoundError(
                unknown_name_message("PROCESSING location", name, [p.name for p in places])
            )
        return chosen[0]
    if not places:
        raise NotFoundError("no active PROCESSING location in ops-db (load the site configs)")
    return places[0]


def user_row(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        user = User(username=username)
        session.add(user)
        session.flush()
    return user


def used_bytes(session: Session, user_id: int, location_id: int) -> tuple[int, set[int]]:
    """Bytes of the distinct files the user's live requests hold at the location, and
    their ids."""
    held = set(
        session.scalars(
            select(staging_job_file.c.raw_data_file_id)
            .join(StagingJob, StagingJob.id == staging_job_file.c.staging_job_id)
            .where(
                StagingJob.user_id == user_id,
                StagingJob.destination_location_id == location_id,
                StagingJob.state.in_(LIVE),
            )
        )
    )
    total = 0
    for chunk in in_chunks(sorted(held)):
        total += int(
            session.scalar(
                select(func.coalesce(func.sum(RawDataFile.size), 0)).where(
                    RawDataFile.id.in_(chunk)
                )
            )
            or 0
        )
    return total, held


@dataclass(frozen=True)
class NewRequest:
    id: int
    folder: str
    files: int
    bytes: int
    release_after: datetime
    #: files already staged at the location (by anyone): not fetched again
    already_staged: int = 0
    notes: list[str] = field(default_factory=list)


def _check_archived(files: Sequence[WantedFile]) -> None:
    waiting = [f for f in files if f.state is not RawDataFileState.ARCHIVED]
    if waiting:
        states = sorted({f.state.value for f in waiting})
        raise UsageError(
            f"{len(waiting)} of the {len(files)} file(s) selected are not archived yet "
            f"({', '.join(states)}; e.g. {waiting[0].relative_path}): ask again once they "
            "are, or narrow the selection with --files"
        )


def _check_quota(
    session: Session, user: User, location: DataLocation, files: Sequence[WantedFile]
) -> None:
    quota = location.user_quota_bytes
    if quota is None:
        return
    used, held = used_bytes(session, user.id, location.id)
    asked = sum(f.size for f in files if f.id not in held)
    if used + asked > quota:
        raise QuotaExceeded(
            f"staging refused: it asks {asked} bytes; {user.username} uses {used} of a "
            f"{quota}-byte quota at {location.name} ({used + asked - quota} bytes too many); "
            "release a staging (ccat-hpc stage release ID) or ask for less"
        )


def create_request(
    session: Session,
    wanted: Selection,
    username: str,
    *,
    location: str | None = None,
    days: float | None = None,
    name: str = "",
) -> NewRequest:
    """Record a PENDING staging request for the files ``wanted`` selects (caller commits)."""
    files = select_files(session, wanted)
    if not files:
        raise NotFoundError(f"nothing matches the selection {wanted.as_json()}")
    _check_archived(files)
    place = processing_location(session, location)
    user = user_row(session, check_username(username))
    # one request of a user at a time past this point: two cannot both fit the quota
    session.execute(select(User.id).where(User.id == user.id).with_for_update())
    _check_quota(session, user, place, files)
    lifetime = days if days is not None else place.retention_days or DEFAULT_DAYS
    release_after = utcnow() + timedelta(days=lifetime)
    job = StagingJob(
        name=name[:200],
        user_id=user.id,
        destination_location_id=place.id,
        # the lifetime counts from when the data is READY (the stage job sets the time)
        selection=wanted.as_json() | {"keep_days": lifetime},
        file_count=len(files),
        total_bytes=sum(f.size for f in files),
        release_after=release_after,
    )
    session.add(job)
    session.flush()
    job.destination_path = request_folder(username, job.id)
    for chunk in in_chunks([f.id for f in files]):
        session.execute(
            insert(staging_job_file),
            [{"staging_job_id": job.id, "raw_data_file_id": i} for i in chunk],
        )
    packages = sorted({f.package_id for f in files if f.package_id is not None})
    if packages:
        session.execute(
            insert(staging_job_raw_data_package),
            [{"staging_job_id": job.id, "raw_data_package_id": p} for p in packages],
        )
    staged = len({f for _, f in staged_rows(session, place.id, [f.id for f in files])})
    return NewRequest(
        job.id, job.destination_path, len(files), job.total_bytes, release_after, staged
    )


#: copy states of a staged file that can be used (not being deleted, not gone)
USABLE = (PhysicalCopyState.VERIFIED, PhysicalCopyState.PRESENT)


def staged_rows(
    session: Session,
    location_id: int,
    file_ids: Sequence[int],
    states: Sequence[PhysicalCopyState] = USABLE,
) -> list[tuple[int, int]]:
    """(copy id, file id) of every copy of the files at the location in ``states``."""
    copy = RawDataFilePhysicalCopy
    found: list[tuple[int, int]] = []
    for chunk in in_chunks(list(file_ids)):
        rows = session.execute(
            select(copy.id, copy.raw_data_file_id).where(
                copy.raw_data_file_id.in_(chunk),
                copy.data_location_id == location_id,
                copy.state.in_(states),
            )
        )
        found += [(copy_id, file_id) for copy_id, file_id in rows]
    return found


def after_a_failed_try(
    policy: RetryPolicy, attempts: int, retryable: bool, now: datetime
) -> tuple[StagingJobState, int, datetime | None]:
    """A request's state after a failed try (RETRY_WAIT after the backoff, or FAILED on
    a permanent failure or the last try), its tries, and when it may go again (pure)."""
    tries = attempts + 1
    if not retryable or tries >= policy.attempts_for("stage"):
        return S.FAILED, tries, None
    return S.RETRY_WAIT, tries, now + timedelta(seconds=policy.delay(tries))


def files_of(session: Session, staging_id: int) -> list[int]:
    return list(
        session.scalars(
            select(staging_job_file.c.raw_data_file_id).where(
                staging_job_file.c.staging_job_id == staging_id
            )
        )
    )


def refresh_expiry(session: Session, location_id: int, file_ids: Sequence[int]) -> None:
    """Every usable staged copy of the files expires with the latest live request that
    uses the file at the location (now, if none does)."""
    now = utcnow()
    for chunk in in_chunks(sorted(set(file_ids))):
        latest: dict[int, datetime] = dict(
            session.execute(
                select(staging_job_file.c.raw_data_file_id, func.max(StagingJob.release_after))
                .join(StagingJob, StagingJob.id == staging_job_file.c.staging_job_id)
                .where(
                    staging_job_file.c.raw_data_file_id.in_(chunk),
                    StagingJob.destination_location_id == location_id,
                    StagingJob.state.in_(LIVE),
                )
                .group_by(staging_job_file.c.raw_data_file_id)
            ).all()
        )
        rows = staged_rows(session, location_id, chunk)
        by_expiry: dict[datetime, list[int]] = {}
        for copy_id, file_id in rows:
            until = latest.get(file_id)
            by_expiry.setdefault(now if until is None else max(until, now), []).append(copy_id)
        for until, ids in by_expiry.items():
            session.execute(
                update(PhysicalCopy).where(PhysicalCopy.id.in_(ids)).values(expires_at=until)
            )


def remove_folder(location: DataLocation, folder: str) -> str | None:
    """Remove a request's folder (links and markers; the staged files stay); None, or
    why it could not be removed (it is then left for an operator, nothing else fails).
    No link is followed: not on the way down to it, not inside it."""
    if not isinstance(location, DiskDataLocation) or relative_path_problem(folder) is not None:
        return None
    path = Path(location.path)
    for part in Path(folder).parts:
        path = path / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{path}: {exc.strerror}"
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            return f"{path} is not a folder (a link?): left alone"
    try:
        shutil.rmtree(path)  # fd-based on Linux: never follows a link inside
    except OSError as exc:
        return f"{path}: cannot remove it: {exc.strerror}"
    return None


USERNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")


def check_username(name: str) -> str:
    """A user name that is safe as a folder name (as Unix account names are)."""
    if not USERNAME.fullmatch(name):
        raise UsageError(f"not a user name: {name!r} (letters, digits, '.', '_', '-')")
    return name


@dataclass(frozen=True)
class Released:
    state: StagingJobState
    #: why the request's folder is still there (None: it is gone)
    folder_problem: str | None = None


def release(session: Session, staging_id: int, *, now: datetime | None = None) -> Released:
    """End a request: STAGED → RELEASED, waiting ones → CANCELLED; its folder goes and
    its files expire unless another live request uses them."""
    job = session.get(StagingJob, staging_id)
    if job is None:
        raise NotFoundError(f"no staging request {staging_id}")
    when = now or utcnow()
    if job.state is S.STAGED:
        moved = move(session, StagingJob, [job.id], S.STAGED, S.RELEASED, release_after=when)
    elif job.state in (S.PENDING, S.RETRY_WAIT):
        moved = move(session, StagingJob, [job.id], job.state, S.CANCELLED, finished_at=when)
    elif job.state in (S.SUBMITTED, S.STAGING):
        raise StateConflict(
            f"staging {staging_id} is being staged now; release it once it is READY"
        )
    else:
        return Released(job.state)
    if not moved:
        raise StateConflict(f"staging {staging_id} changed meanwhile; ask again")
    session.refresh(job)
    refresh_expiry(session, job.destination_location_id, files_of(session, job.id))
    return Released(job.state, remove_folder(job.destination_location, job.destination_path))


def expire(
    session: Session, now: datetime | None = None, location_ids: Sequence[int] | None = None
) -> list[Released]:
    """Release every STAGED request (at these locations) whose time is up."""
    now = now or utcnow()
    query = select(StagingJob.id).where(
        StagingJob.state == S.STAGED, StagingJob.release_after <= now
    )
    if location_ids is not None:
        query = query.where(StagingJob.destination_location_id.in_(list(location_ids)))
    return [release(session, staging_id, now=now) for staging_id in session.scalars(query)]
