"""The stage job's task: bring each claimed staging request's files from the
LONG_TERM_ARCHIVE to its PROCESSING location, verified, and show it in its folder.

For one request:
1. its folder gets the STAGING marker;
2. files already staged at the location (by any request) are used as they are, once
   found there at their size; the others are fetched package by package from a
   VERIFIED archive copy: when only some of a package is wanted, each file is one
   ranged read of its bytes (the package's index in ops-db gives where they are);
   when most of it is, one read streams the package's span and it is cut into files.
   Every file is written under its staged name only when its bytes match its
   checksum; an archive copy whose bytes do not is recorded CORRUPT and the next one
   is tried;
3. every file is linked into the request's folder under its own path, and the READY
   marker lists each file's xxh3-128 (``xxh128sum -c READY`` checks them);
4. the request is STAGED.
A storage outage leaves the request waiting out a backoff (RETRY_WAIT); a file no
archive copy can give, or the last try, FAILS it with the FAILED marker and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataLocation,
    PhysicalCopy,
    RawDataFile,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    StagingJob,
    StagingJobLog,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import LocationType, LogLevel, PhysicalCopyState, StagingJobState
from ccat_hpc.db.transitions import in_chunks, move
from ccat_hpc.logline import log_line
from ccat_hpc.pipeline import copies, failures
from ccat_hpc.pipeline.placement import folder_storage
from ccat_hpc.pipeline.staging_layout import (
    FAILED_MARKER,
    MARKERS,
    READY_MARKER,
    STAGING_MARKER,
    staged_key,
)
from ccat_hpc.pipeline.staging_request import (
    DEFAULT_DAYS,
    USABLE,
    after_a_failed_try,
    files_of,
    refresh_expiry,
    staged_rows,
)
from ccat_hpc.pipeline.step_items import retry_policy
from ccat_hpc.pipeline.tasks import TaskContext
from ccat_hpc.storage.base import (
    ChecksumMismatch,
    ObjectNotFound,
    StorageBackend,
    StorageError,
)
from ccat_hpc.storage.factory import backend_for
from ccat_hpc.storage.posix import PosixStorage

S = StagingJobState
C = PhysicalCopyState
#: a package of which at least this share is wanted is read in one stream
STREAM_SHARE = 0.5


class StageProblem(Exception):
    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.retryable = retryable


@dataclass(frozen=True)
class StagedFile:
    id: int
    relative_path: str
    size: int
    checksum: str
    key: str
    package_id: int | None


@dataclass
class Request:
    id: int
    folder: str
    location_id: int
    storage: PosixStorage
    release_after: datetime | None
    files: list[StagedFile]
    #: how long the staged data is kept once READY
    lifetime: timedelta = timedelta(days=14)
    reused: dict[int, int] = field(default_factory=dict)
    bytes_read: int = 0


def _start(context: TaskContext, staging_id: int) -> Request | None:
    with transaction(context.factory) as session:
        moved = move(
            session,
            StagingJob,
            [staging_id],
            S.SUBMITTED,
            S.STAGING,
            only=[StagingJob.claimed_by_batch_id == context.batch_id],
            started_at=utcnow(),
        )
        if not moved:
            return None
        job = session.get_one(StagingJob, staging_id)
        lifetime = timedelta(days=float(job.selection.get("keep_days", DEFAULT_DAYS)))
        location = job.destination_location
        try:
            storage = folder_storage(location)
        except StorageError as exc:
            raise StageProblem(str(exc), retryable=False) from None
        return Request(
            job.id,
            job.destination_path,
            location.id,
            storage,
            utcnow() + lifetime,
            _wanted(session, job.id, location),
            lifetime,
        )


def _wanted(session: Session, staging_id: int, location: DataLocation) -> list[StagedFile]:
    """The files the request asked for, by path (with the key of their staged copy)."""
    source = select(DataLocation.name).where(DataLocation.id == RawDataFile.source_location_id)
    found: list[StagedFile] = []
    for chunk in in_chunks(sorted(files_of(session, staging_id))):
        rows = session.execute(
            select(RawDataFile, source.scalar_subquery()).where(RawDataFile.id.in_(chunk))
        )
        found += [
            StagedFile(
                f.id,
                f.relative_path,
                f.size,
                f.checksum or "",
                staged_key(str(source_name), f.relative_path),
                f.raw_data_package_id,
            )
            for f, source_name in rows
        ]
    return sorted(found, key=lambda f: f.relative_path)


def _take_staged(session: Session, request: Request, file_ids: Sequence[int]) -> dict[int, int]:
    """file id → usable staged copy, each taken for this request in one guarded UPDATE
    (its expiry moved to the request's, never earlier): a copy cleanup took first is
    not returned, and cleanup leaves alone a copy whose expiry moved past its plan."""
    until = request.release_after or utcnow()
    later = case(
        (or_(PhysicalCopy.expires_at.is_(None), PhysicalCopy.expires_at < until), until),
        else_=PhysicalCopy.expires_at,
    )
    candidates = dict(staged_rows(session, request.location_id, file_ids))
    found: dict[int, int] = {}
    for chunk in in_chunks(list(candidates)):
        taken = session.scalars(
            update(PhysicalCopy)
            .where(PhysicalCopy.id.in_(chunk), PhysicalCopy.state.in_(USABLE))
            .values(expires_at=later)
            .returning(PhysicalCopy.id)
        ).all()
        found.update({candidates[copy_id]: copy_id for copy_id in taken})
    return found


def _being_deleted(session: Session, request: Request, file_ids: Sequence[int]) -> None:
    """StageProblem (retryable) when cleanup is deleting a staged copy of a wanted file:
    its key is not written again until cleanup has finished with it."""
    busy = staged_rows(session, request.location_id, file_ids, (C.DELETION_PENDING,))
    if busy:
        raise StageProblem(
            f"cleanup is deleting {len(busy)} staged file(s) of this request; they are "
            "staged again once it has finished",
            retryable=True,
        )


def _reusable(context: TaskContext, request: Request) -> dict[int, int]:
    """file id → copy id of the files staged here already whose bytes are there."""
    with transaction(context.factory) as session:
        rows = _take_staged(session, request, [f.id for f in request.files])
        _being_deleted(session, request, [f.id for f in request.files])
    usable: dict[int, int] = {}
    for staged in request.files:
        copy_id = rows.get(staged.id)
        if copy_id is None:
            continue
        problem = _not_there(request.storage, staged)
        if problem is None:
            usable[staged.id] = copy_id
            continue
        with transaction(context.factory) as session:
            copies.found_bad(session, copy_id, C.MISSING, f"staged copy: {problem}")
    return usable


def _not_there(storage: PosixStorage, staged: StagedFile) -> str | None:
    """None when the staged file is at its key with its size, else what is wrong."""
    try:
        found = storage.stat(staged.key)
    except StorageError as exc:
        return str(exc)
    return None if found.size == staged.size else f"{found.size} bytes, not {staged.size}"


def _archive_copies(
    session: Session, package_id: int, environ: Mapping[str, str]
) -> list[tuple[int, str, StorageBackend]]:
    """(copy id, location, its storage) of the package's VERIFIED archive copies, by
    the archive locations' priority."""
    rows = session.execute(
        select(RawDataPackagePhysicalCopy.id, DataLocation)
        .join(DataLocation, DataLocation.id == RawDataPackagePhysicalCopy.data_location_id)
        .where(
            RawDataPackagePhysicalCopy.raw_data_package_id == package_id,
            RawDataPackagePhysicalCopy.state == C.VERIFIED,
            DataLocation.location_type == LocationType.LONG_TERM_ARCHIVE,
        )
        .order_by(DataLocation.priority, DataLocation.id)
    ).all()
    return [(copy_id, where.name, backend_for(where, environ)) for copy_id, where in rows]


class _Span:
    """One streamed read of a package's span, cut into members in offset order (views
    into the pieces read: no byte is copied to cut them)."""

    def __init__(self, pieces: Iterator[bytes], start: int) -> None:
        self._pieces = pieces
        self._held = memoryview(b"")
        self.position = start

    def _next(self) -> None:
        piece = next(self._pieces, None)
        if piece is None:
            raise StorageError("the archive's stream ended early", transient=True)
        self._held = memoryview(piece)

    def skip_to(self, offset: int) -> None:
        while self.position < offset:
            if not self._held:
                self._next()
            step = min(len(self._held), offset - self.position)
            self._held = self._held[step:]
            self.position += step

    def take(self, size: int) -> Iterator[memoryview]:
        left = size
        while left > 0:
            if not self._held:
                self._next()
            piece, self._held = self._held[:left], self._held[left:]
            left -= len(piece)
            self.position += len(piece)
            yield piece


def _fetch_package(
    archive: StorageBackend,
    package: RawDataPackage,
    wanted: list[StagedFile],
    storage: PosixStorage,
) -> int:
    """Write the wanted files of one package from the archive copy; bytes read."""
    entries = {e["name"]: e for e in (package.member_index or {}).get("members", [])}
    missing = [f.relative_path for f in wanted if f.relative_path not in entries]
    if missing:
        raise StageProblem(f"{package.name}: its index lacks {missing[0]}", retryable=False)
    ordered = sorted(wanted, key=lambda f: int(entries[f.relative_path]["offset"]))
    wanted_bytes = sum(f.size for f in wanted)
    if len(ordered) > 1 and wanted_bytes >= STREAM_SHARE * max(package.size, 1):
        first = int(entries[ordered[0].relative_path]["offset"])
        last = entries[ordered[-1].relative_path]
        end = int(last["offset"]) + int(last["size"])
        span = _Span(archive.read(package.relative_path, first, end - first), first)
        for staged in ordered:
            span.skip_to(int(entries[staged.relative_path]["offset"]))
            _write(storage, staged, span.take(staged.size))
        return end - first
    for staged in ordered:
        entry = entries[staged.relative_path]
        pieces = archive.read(package.relative_path, int(entry["offset"]), staged.size)
        _write(storage, staged, pieces)
    return wanted_bytes


def _write(
    storage: PosixStorage, staged: StagedFile, pieces: Iterator[bytes] | Iterator[memoryview]
) -> None:
    storage.local_path(staged.key, create_folders=True)
    storage.write(staged.key, pieces, checksum=staged.checksum, size=staged.size)
    os.chmod(storage.local_path(staged.key), 0o444)  # staged data is read, never changed


def _fetch(
    context: TaskContext, request: Request, package_id: int, wanted: list[StagedFile]
) -> None:
    with transaction(context.factory) as session:
        package = session.get_one(RawDataPackage, package_id)
        session.expunge(package)
        archives = _archive_copies(session, package_id, context.environ)
    problems: list[str] = []
    for copy_id, where, archive in archives:
        try:
            request.bytes_read += _fetch_package(archive, package, wanted, request.storage)
        except (ChecksumMismatch, ObjectNotFound) as exc:  # this copy is bad: the next one
            reason = f"{package.name} in {where}: {exc}"
            state = C.MISSING if isinstance(exc, ObjectNotFound) else C.CORRUPT
            with transaction(context.factory) as session:
                copies.found_bad(session, copy_id, state, f"{reason} (found by staging)")
            problems.append(reason)
            continue
        except StorageError as exc:
            raise StageProblem(
                f"{package.name} from {where}: {exc}", retryable=failures.retryable(exc)
            ) from None
        _record_copies(context, request, wanted)
        return
    why = "; ".join(problems) or "no verified archive copy"
    raise StageProblem(
        f"{package.name}: no archive copy could give its files: {why}", retryable=False
    )


def _record_copies(context: TaskContext, request: Request, staged: list[StagedFile]) -> None:
    """The fetched files' copies VERIFIED: the row of each file at the location is
    reused (one after a repair, or one another task recorded meanwhile), or made."""
    copy = RawDataFilePhysicalCopy
    ids = [f.id for f in staged]
    with transaction(context.factory) as session:
        states = (C.VERIFIED, C.PRESENT, C.MISSING, C.CORRUPT)
        existing = {f: c for c, f in staged_rows(session, request.location_id, ids, states)}
        made = [
            copy(raw_data_file_id=i, data_location_id=request.location_id, state=C.PENDING)
            for i in ids
            if i not in existing
        ]
        session.add_all(made)
        session.flush()
        now, until = utcnow(), request.release_after
        fresh = [r.id for r in made]
        move(session, PhysicalCopy, fresh, C.PENDING, C.VERIFIED, verified_at=now, expires_at=until)
        bad = (C.MISSING, C.CORRUPT, C.PRESENT)
        again = list(existing.values())
        move(session, PhysicalCopy, again, bad, C.VERIFIED, verified_at=now, expires_at=until)
        _take_staged(session, request, list(existing))  # one another task recorded: later


def _link(request: Request) -> None:
    """Each file under its own path in the request's folder, linked to its staged copy
    (checked to be there, whole, first: cleanup may have been deleting it)."""
    root = request.storage.root
    for staged in request.files:
        problem = _not_there(request.storage, staged)
        if problem is not None:
            raise StageProblem(f"{staged.relative_path}: {problem}", retryable=True)
        link = request.storage.local_path(
            f"{request.folder}/{staged.relative_path}", create_folders=True
        )
        target = os.path.relpath(root / staged.key, start=link.parent)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(target, link)


def write_marker(storage: PosixStorage, folder: str, marker: str, text: str) -> Path:
    """Show ``marker`` (and no other) in the request's folder, written whole at once."""
    path = storage.local_path(f"{folder}/{marker}", create_folders=True)
    partial = path.with_name(f".{marker}.partial")
    partial.unlink(missing_ok=True)  # a left-over (or a planted link): never written through
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(partial, flags, 0o644), "w") as handle:
        handle.write(text)
    os.replace(partial, path)
    for other in MARKERS:
        if other != marker:
            (path.parent / other).unlink(missing_ok=True)
    return path


def _ready_text(request: Request) -> str:
    return "".join(f"{f.checksum}  {f.relative_path}\n" for f in request.files)


def stage_one(context: TaskContext, staging_id: int) -> dict[str, int] | None:
    """Stage one request; its numbers, or None when this batch no longer holds it."""
    request = _start(context, staging_id)
    if request is None:
        return None
    write_marker(
        request.storage,
        request.folder,
        STAGING_MARKER,
        f"staging request {request.id} is running\n",
    )
    request.reused = _reusable(context, request)
    by_package: dict[int, list[StagedFile]] = {}
    for staged in request.files:
        if staged.id not in request.reused:
            if staged.package_id is None:
                raise StageProblem(f"{staged.relative_path} is in no package", retryable=False)
            by_package.setdefault(staged.package_id, []).append(staged)
    for package_id, wanted in sorted(by_package.items()):
        context.stop.check()
        _fetch(context, request, package_id, wanted)
    _link(request)
    fetched = len(request.files) - len(request.reused)
    with transaction(context.factory) as session:
        done = move(
            session,
            StagingJob,
            [request.id],
            S.STAGING,
            S.STAGED,
            only=[StagingJob.claimed_by_batch_id == context.batch_id],
            finished_at=utcnow(),
            # kept for its lifetime from now, not from when it was asked for
            release_after=utcnow() + request.lifetime,
            claimed_by_batch_id=None,
            failure_reason=None,
        )
        if not done:  # another batch holds it now (this one was taken for dead)
            return None
        refresh_expiry(session, request.location_id, [f.id for f in request.files])
        session.add(
            StagingJobLog(
                staging_job_id=request.id,
                message=(
                    f"staged {len(request.files)} file(s): {fetched} fetched "
                    f"({request.bytes_read} bytes read from the archive), "
                    f"{len(request.reused)} staged already"
                ),
            )
        )
    write_marker(request.storage, request.folder, READY_MARKER, _ready_text(request))
    log_line(
        f"staging {request.id}: READY in {request.storage.root / request.folder}: "
        f"{len(request.files)} file(s), {fetched} fetched, {request.bytes_read} bytes read"
    )
    return {"files": len(request.files), "fetched": fetched, "bytes_read": request.bytes_read}


def _failed(context: TaskContext, staging_id: int, problem: StageProblem) -> str:
    """Record the failure: RETRY_WAIT after a backoff, or FAILED (the FAILED marker)."""
    reason = str(problem)
    with transaction(context.factory) as session:
        job = session.get_one(StagingJob, staging_id)
        policy, _ = retry_policy(session, context.batch_id)
        new, tries, retry_after = after_a_failed_try(
            policy, job.attempts, problem.retryable, utcnow()
        )
        last = new is S.FAILED
        moved = move(
            session,
            StagingJob,
            [staging_id],
            (S.SUBMITTED, S.STAGING),
            new,
            only=[StagingJob.claimed_by_batch_id == context.batch_id],
            attempts=tries,
            retry_after=retry_after,
            failure_reason=reason,
            claimed_by_batch_id=None,
            finished_at=utcnow() if last else None,
        )
        if not moved:
            return "skipped"
        session.add(StagingJobLog(staging_job_id=staging_id, level=LogLevel.ERROR, message=reason))
        location = job.destination_location
        folder = job.destination_path
        try:
            storage: PosixStorage | None = folder_storage(location)
        except StorageError:
            storage = None
    if last and storage is not None:
        try:
            write_marker(storage, folder, FAILED_MARKER, reason + "\n")
        except (StorageError, OSError) as exc:
            log_line(f"staging {staging_id}: cannot write its FAILED marker: {exc}")
    log_line(f"staging {staging_id}: {'FAILED' if last else 'will be tried again'}: {reason}")
    return "failed" if last else "retry"


def stage_task(context: TaskContext) -> dict[str, Any]:
    counts = {
        "staged": 0,
        "failed": 0,
        "retry": 0,
        "skipped": 0,
        "files": 0,
        "fetched": 0,
        "bytes_read": 0,
    }
    for staging_id in context.items:
        context.stop.check()
        try:
            done = stage_one(context, int(staging_id))
        except StageProblem as problem:
            counts[_failed(context, int(staging_id), problem)] += 1
            continue
        except (StorageError, OSError) as exc:
            outage = StageProblem(f"{type(exc).__name__}: {exc}", retryable=failures.retryable(exc))
            counts[_failed(context, int(staging_id), outage)] += 1
            continue
        if done is None:
            counts["skipped"] += 1
            continue
        counts["staged"] += 1
        for key in ("files", "fetched", "bytes_read"):
            counts[key] += done[key]
    return counts
