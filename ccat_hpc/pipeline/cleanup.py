"""Cleanup: delete copies whose location's retention has passed, and only those whose
data is safe in the LONG_TERM_ARCHIVE.

For every copy past its retention (:mod:`ccat_hpc.pipeline.cleanup_candidates`) the
pure policy decides (:func:`ccat_hpc.pipeline.cleanup_policy.decide`); a copy it lets
go is then deleted in four steps, each safe to stop after:

1. the archive copies that prove it are checked again on the archive itself: the
   object is there, of the package's size, with the package's checksum recorded; one
   that is not is recorded MISSING or CORRUPT and does not count. Fewer good ones than
   the site requires: the copy is kept;
2. the copy's bytes are checked to be the ones ops-db knows (a SOURCE file still the
   filed one: same inode, size and modification time), so a file written since under
   the same name is never removed;
3. the copy goes to DELETION_PENDING, its bytes are deleted, and then
4. it is DELETED (with the time). A copy whose deletion failed stays DELETION_PENDING
   and the next run takes it again, through the same checks.

Nothing in a LONG_TERM_ARCHIVE is ever deleted here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import DataLocation, PhysicalCopy, RawDataFilePhysicalCopy
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import LocationType, PhysicalCopyState
from ccat_hpc.db.transitions import move
from ccat_hpc.errors import NotFoundError
from ccat_hpc.logline import log_line
from ccat_hpc.pipeline import copies, staging_request
from ccat_hpc.pipeline.cleanup_candidates import (
    FILE,
    KINDS,
    Candidate,
    CleanupLocation,
    archive_copies,
    candidates,
    cleanup_locations,
)
from ccat_hpc.pipeline.cleanup_policy import ArchiveCopy, Verdict, decide_for_packages
from ccat_hpc.pipeline.tasks import TaskContext, TaskFailure
from ccat_hpc.storage.base import ObjectNotFound, StorageBackend, StorageError
from ccat_hpc.storage.factory import backend_for
from ccat_hpc.storage.posix import PosixStorage

C = PhysicalCopyState
PAGE = 500


@dataclass(frozen=True)
class Decision:
    candidate: Candidate
    verdict: Verdict
    location: CleanupLocation


def judge(
    candidate: Candidate,
    archive: Mapping[int, list[ArchiveCopy]],
    now: datetime,
    required: int,
) -> Verdict:
    by_package = [(name, archive.get(package_id, [])) for package_id, name in candidate.packages]
    return decide_for_packages(candidate.copy, by_package, now, required)


def plan_pages(
    factory: sessionmaker[Session],
    *,
    site: str | None = None,
    location: str | None = None,
    now: datetime | None = None,
) -> Iterator[list[Decision]]:
    """The decisions on the copies past their retention, a page at a time, location by
    location (read-only; each page read in its own transaction)."""
    now = now or utcnow()
    with transaction(factory) as session:
        places = cleanup_locations(session, location, site)
    for place in places:
        for what in KINDS:
            after = 0
            while True:
                with transaction(factory) as session:
                    page = candidates(session, place, what, now, after=after, limit=PAGE)
                    archive = archive_copies(session, (p for c in page for p, _ in c.packages))
                if page:
                    yield [Decision(c, judge(c, archive, now, place.required), place) for c in page]
                if len(page) < PAGE:
                    break
                after = page[-1].copy.copy_id


def plan_cleanup(
    factory: sessionmaker[Session],
    *,
    site: str | None = None,
    location: str | None = None,
    now: datetime | None = None,
) -> Iterator[Decision]:
    """The decision on every copy past its retention (read-only)."""
    for page in plan_pages(factory, site=site, location=location, now=now):
        yield from page


class Stores:
    """The storage of each location, made once per run."""

    def __init__(self, factory: sessionmaker[Session], environ: Mapping[str, str]) -> None:
        self._factory = factory
        self._environ = environ
        self._made: dict[int, StorageBackend] = {}

    def of(self, location_id: int) -> StorageBackend:
        if location_id not in self._made:
            with transaction(self._factory) as session:
                location = session.get_one(DataLocation, location_id)
                self._made[location_id] = backend_for(location, self._environ)
        return self._made[location_id]


class ArchiveCheck:
    """Asks the archive whether each proof copy is still there, whole; remembers answers
    for the run (many files share one package) and records copies found bad."""

    def __init__(self, factory: sessionmaker[Session], stores: Stores) -> None:
        self._factory = factory
        self._stores = stores
        self._answers: dict[int, str | None] = {}

    def problem(self, copy: ArchiveCopy) -> str | None:
        """None when the archive holds the copy as ops-db says; else what is wrong."""
        if copy.copy_id not in self._answers:
            self._answers[copy.copy_id] = self._ask(copy)
        return self._answers[copy.copy_id]

    def _ask(self, copy: ArchiveCopy) -> str | None:
        where = f"{copy.package} in {copy.location}"
        try:
            storage = self._stores.of(copy.location_id)
            found = storage.stat(copy.key)
        except ObjectNotFound:
            return self._bad(copy, C.MISSING, f"{where}: the object is gone from the archive")
        except StorageError as exc:
            return f"{where}: the archive cannot be asked now ({exc})"
        if found.size != copy.size:
            return self._bad(
                copy, C.CORRUPT, f"{where}: {found.size} bytes in the archive, not {copy.size}"
            )
        if storage.records_checksums:
            if found.checksum is None:
                return f"{where}: the archive recorded no checksum for it"
            if found.checksum != copy.checksum:
                return self._bad(
                    copy,
                    C.CORRUPT,
                    f"{where}: the archive recorded xxh3-128 {found.checksum}, not {copy.checksum}",
                )
        return None

    def _bad(self, copy: ArchiveCopy, state: PhysicalCopyState, reason: str) -> str:
        with transaction(self._factory) as session:
            copies.found_bad(session, copy.copy_id, state, f"{reason} (found by cleanup)")
        log_line(f"cleanup: {reason}")
        return reason

    def confirm(self, decision: Decision) -> str | None:
        """None when every package of the copy still has enough good archive copies."""
        for _, package in decision.candidate.packages:
            proof = [a for a in decision.verdict.proof if a.package == package]
            problems = [p for p in (self.problem(a) for a in proof) if p is not None]
            if len(proof) - len(problems) < decision.location.required:
                return "; ".join(problems) or f"{package}: no verified archive copy"
        return None


@dataclass
class CleanupReport:
    deleted: int = 0
    deleted_bytes: int = 0
    #: copies the policy keeps (retention passed, but the archive does not prove them)
    kept: int = 0
    #: copies the re-check on the archive or on the copy itself refused
    refused: int = 0
    #: copies whose deletion failed (left DELETION_PENDING for the next run)
    failed: int = 0
    #: staging requests released because their time was up
    expired_stagings: int = 0
    by_location: dict[str, list[int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "deleted": self.deleted,
            "deleted_bytes": self.deleted_bytes,
            "kept": self.kept,
            "refused": self.refused,
            "failed": self.failed,
            "expired_stagings": self.expired_stagings,
            "by_location": {k: {"copies": n, "bytes": b} for k, (n, b) in self.by_location.items()},
            "problems": self.problems[:50],
        }


def run_cleanup(
    factory: sessionmaker[Session],
    environ: Mapping[str, str],
    *,
    site: str | None = None,
    location: str | None = None,
    now: datetime | None = None,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> CleanupReport:
    """Release the stagings whose time is up, then delete every copy the policy and the
    re-checks allow (at most ``limit``)."""
    report = CleanupReport()
    with transaction(factory) as session:
        places = cleanup_locations(session, location, site)
        if location is not None and not places:
            raise NotFoundError(f"no SOURCE, BUFFER or PROCESSING location called {location!r}")
        processing = [p.id for p in places if p.location_type is LocationType.PROCESSING]
        expired = staging_request.expire(session, now, processing)
    report.expired_stagings = len(expired)
    report.problems += [
        f"a released staging's folder stays: {e.folder_problem}"
        for e in expired
        if e.folder_problem
    ]
    stores = Stores(factory, environ)
    check = ArchiveCheck(factory, stores)
    for page in plan_pages(factory, site=site, location=location, now=now):
        if should_stop() or (limit is not None and report.deleted >= limit):
            break
        allowed: list[Decision] = []
        for decision in page:
            if not decision.verdict.delete:
                report.kept += 1
                continue
            problem = check.confirm(decision) or _not_ours(stores, decision.candidate)
            if problem is not None:
                report.refused += 1
                report.problems.append(f"{_describe(decision.candidate)}: kept: {problem}")
                continue
            allowed.append(decision)
        if limit is not None:
            allowed = allowed[: limit - report.deleted]
        for decision in _delete_page(factory, stores, allowed, report):
            _count(report, decision)
    return report


def _describe(candidate: Candidate) -> str:
    return f"{candidate.what} {candidate.name} at {candidate.copy.location}"


def _not_ours(stores: Stores, candidate: Candidate) -> str | None:
    """What says the bytes at the copy's place are not the ones ops-db has, or None."""
    try:
        storage = stores.of(candidate.location_id)
        found = storage.stat(candidate.key)
    except ObjectNotFound:
        return None  # already gone: recorded as deleted
    except StorageError as exc:
        return f"cannot look at it: {exc}"
    if found.size != candidate.size:
        return f"holds {found.size} bytes, not the {candidate.size} ops-db has: not deleted"
    if candidate.identity is not None and isinstance(storage, PosixStorage):
        return _changed_since_filing(storage, candidate)
    return None


def _superseded(factory: sessionmaker[Session], candidate: Candidate) -> bool:
    """At PROCESSING: whether another row of the same file there holds its key now (a
    staging recorded the file again): then only this row goes, not the bytes."""
    if candidate.copy.location_type is not LocationType.PROCESSING or candidate.what != FILE:
        return False
    row = RawDataFilePhysicalCopy
    with transaction(factory) as session:
        file_id = session.scalar(
            select(row.raw_data_file_id).where(row.id == candidate.copy.copy_id)
        )
        others = session.scalar(
            select(func.count(row.id)).where(
                row.raw_data_file_id == file_id,
                row.data_location_id == candidate.location_id,
                row.id != candidate.copy.copy_id,
                row.state.in_((C.PENDING, C.PRESENT, C.VERIFIED)),
            )
        )
    return bool(others)


def _changed_since_filing(storage: PosixStorage, candidate: Candidate) -> str | None:
    """At SOURCE: whether the file there is another one than the one filed."""
    inode, mtime_ns = candidate.identity or (None, None)
    try:
        info = os.lstat(storage.local_path(candidate.key))
    except FileNotFoundError:
        return None
    except (OSError, StorageError) as exc:
        return f"cannot look at it: {exc}"
    if (inode is not None and info.st_ino != inode) or (
        mtime_ns is not None and info.st_mtime_ns != mtime_ns
    ):
        return "the file there is not the one filed (another inode or modification time)"
    return None


def _delete_page(
    factory: sessionmaker[Session],
    stores: Stores,
    allowed: list[Decision],
    report: CleanupReport,
) -> list[Decision]:
    """Take the copies for deletion (DELETION_PENDING), remove their bytes, and record
    those removed DELETED; the decisions whose copies were deleted. A copy another run
    changed first is left alone; one whose bytes could not be removed stays
    DELETION_PENDING (counted failed) for the next run."""
    fresh = [
        d.candidate.copy.copy_id for d in allowed if d.candidate.copy.state != C.DELETION_PENDING
    ]
    # a staged copy a new staging took again since the plan (its expiry moved on) stays
    still_due = or_(PhysicalCopy.expires_at.is_(None), PhysicalCopy.expires_at <= utcnow())
    with transaction(factory) as session:
        taken = set(
            move(
                session,
                PhysicalCopy,
                fresh,
                (C.PRESENT, C.VERIFIED, C.CORRUPT),
                C.DELETION_PENDING,
                only=[still_due],
            )
        )
    removed: list[Decision] = []
    for decision in allowed:
        candidate = decision.candidate
        if candidate.copy.state != C.DELETION_PENDING and candidate.copy.copy_id not in taken:
            continue
        try:
            if not _superseded(factory, candidate):
                with contextlib.suppress(ObjectNotFound):  # gone already: a run stopped
                    stores.of(candidate.location_id).delete(candidate.key)
        except StorageError as exc:
            report.failed += 1
            report.problems.append(f"{_describe(candidate)}: deletion failed: {exc}")
            continue
        removed.append(decision)
    with transaction(factory) as session:
        done = set(
            move(
                session,
                PhysicalCopy,
                [d.candidate.copy.copy_id for d in removed],
                C.DELETION_PENDING,
                C.DELETED,
                deleted_at=utcnow(),
            )
        )
    for decision in removed:
        if decision.candidate.what != FILE:
            log_line(f"cleanup: deleted {_describe(decision.candidate)}")
    return [d for d in removed if d.candidate.copy.copy_id in done]


def _count(report: CleanupReport, decision: Decision) -> None:
    report.deleted += 1
    report.deleted_bytes += decision.candidate.size
    tally = report.by_location.setdefault(decision.location.name, [0, 0])
    tally[0] += 1
    tally[1] += decision.candidate.size


def cleanup_task(context: TaskContext) -> dict[str, Any]:
    """The cleanup job's task: one run (for the batch's site or location, if named)."""
    report = run_cleanup(
        context.factory,
        context.environ,
        site=context.parameters.get("site"),
        location=context.parameters.get("location"),
        should_stop=lambda: context.stop.requested,
    )
    for problem in report.problems[:20]:
        log_line(f"cleanup: {problem}")
    summary = report.as_dict()
    if report.failed:
        raise TaskFailure(
            f"{report.failed} deletion(s) failed (taken again next run): {report.problems[0]}",
            retryable=True,
        )
    return summary
