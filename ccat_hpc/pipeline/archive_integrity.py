"""Re-reading package copies in full, and restoring a bad or absent one from a good one.

The scrub and the re-verify campaign read every byte of a copy and compare its size
and xxh3-128 with the package's; each read is a PhysicalCopyCheck row, and the copy
takes the outcome (VERIFIED with the time, CORRUPT or MISSING with the reason).

A copy is restored (a repair, or a re-archive to a new location) by streaming the
package from another VERIFIED copy straight into the target storage, whose write
publishes the object only when the bytes hash to the package's checksum: a source
that turns out damaged is recorded so and the next one is tried, and nothing wrong is
ever published. Archive copies are preferred as sources; a BUFFER copy still there
serves too.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import xxhash
from sqlalchemy import case, select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataLocation,
    PhysicalCopy,
    PhysicalCopyCheck,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import LocationType, PhysicalCopyState
from ccat_hpc.db.transitions import move
from ccat_hpc.pipeline import copies
from ccat_hpc.pipeline.placement import storage_for
from ccat_hpc.storage.base import ChecksumMismatch, ObjectNotFound, StorageBackend, StorageError

C = PhysicalCopyState
#: copies a full re-read may be run on (never one being written or deleted)
CHECKABLE = (C.PRESENT, C.VERIFIED, C.CORRUPT, C.MISSING)


@dataclass(frozen=True)
class PackageCopy:
    """One package copy at one location, with what its bytes must be."""

    copy_id: int
    package_id: int
    package_name: str
    key: str
    size: int
    checksum: str
    location_id: int
    location_name: str
    state: PhysicalCopyState


@dataclass(frozen=True)
class CheckResult:
    state: PhysicalCopyState
    bytes_read: int
    reason: str | None = None


@dataclass(frozen=True)
class Restored:
    """How a restore ended: ``ok`` with the source used, or why not."""

    ok: bool
    bytes_read: int
    detail: str


StorageOf = Callable[[int], StorageBackend]


def package_copies(
    session: Session,
    package_id: int,
    *,
    states: tuple[PhysicalCopyState, ...] = CHECKABLE,
    location_ids: tuple[int, ...] | None = None,
) -> list[PackageCopy]:
    """The package's copies in ``states``: archive copies first, then the most recently
    verified."""
    archive_first = case((DataLocation.location_type == LocationType.LONG_TERM_ARCHIVE, 0), else_=1)
    query = (
        select(RawDataPackagePhysicalCopy, RawDataPackage, DataLocation)
        .join(RawDataPackage, RawDataPackage.id == RawDataPackagePhysicalCopy.raw_data_package_id)
        .join(DataLocation, DataLocation.id == RawDataPackagePhysicalCopy.data_location_id)
        .where(
            RawDataPackagePhysicalCopy.raw_data_package_id == package_id,
            RawDataPackagePhysicalCopy.state.in_(states),
        )
        .order_by(
            archive_first,
            RawDataPackagePhysicalCopy.verified_at.desc(),
            RawDataPackagePhysicalCopy.id,
        )
    )
    if location_ids is not None:
        query = query.where(RawDataPackagePhysicalCopy.data_location_id.in_(location_ids))
    return [_described(c, p, loc) for c, p, loc in session.execute(query)]


def _described(
    copy: RawDataPackagePhysicalCopy, package: RawDataPackage, location: DataLocation
) -> PackageCopy:
    return PackageCopy(
        copy_id=copy.id,
        package_id=package.id,
        package_name=package.name,
        key=package.relative_path,
        size=package.size,
        checksum=(package.checksum or "").lower(),
        location_id=location.id,
        location_name=location.name,
        state=copy.state,
    )


def read_in_full(storage: StorageBackend, copy: PackageCopy) -> CheckResult:
    """Every byte of the copy hashed against the package's size and checksum.

    A missing object is MISSING, other bytes (or a length other than the package's) are
    CORRUPT, and so are bytes the disk under a folder cannot give (EIO twice in a row:
    a media error, not a hiccup of a network mount). An outage of the storage (any
    other error of it) raises StorageError: the check did not happen.
    """
    try:
        return _hash_all(storage, copy)
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise StorageError(f"{copy.location_name}: {exc}", transient=True) from None
    try:
        return _hash_all(storage, copy)  # once more: a soft mount may have hiccuped
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise StorageError(f"{copy.location_name}: {exc}", transient=True) from None
        return CheckResult(C.CORRUPT, 0, f"unreadable (twice): {exc}")


def _hash_all(storage: StorageBackend, copy: PackageCopy) -> CheckResult:
    digest = xxhash.xxh3_128()
    read = 0
    try:
        for chunk in storage.read(copy.key):
            read += len(chunk)
            if read > copy.size:
                return CheckResult(C.CORRUPT, read, f"longer than the package's {copy.size} bytes")
            digest.update(chunk)
    except ObjectNotFound:
        return CheckResult(C.MISSING, read, f"no object {copy.key} at {copy.location_name}")
    if read != copy.size:
        return CheckResult(C.CORRUPT, read, f"{read} bytes, the package has {copy.size}")
    found = str(digest.hexdigest())
    if found != copy.checksum:
        return CheckResult(
            C.CORRUPT, read, f"xxh3-128 of its bytes is {found}, the package's is {copy.checksum}"
        )
    return CheckResult(C.VERIFIED, read)


def record_check(session: Session, copy: PackageCopy, result: CheckResult, checked_by: str) -> bool:
    """The check as a row, and the copy in its outcome; False when the copy moved on in
    the meantime (taken for deletion, or deleted), which then keeps its state."""
    session.add(
        PhysicalCopyCheck(
            physical_copy_id=copy.copy_id,
            checked_at=utcnow(),
            outcome=result.state,
            bytes_read=result.bytes_read,
            checked_by=checked_by[:40],
            reason=result.reason,
        )
    )
    if result.state is C.VERIFIED:
        moved = move(
            session,
            PhysicalCopy,
            [copy.copy_id],
            CHECKABLE,
            C.VERIFIED,
            verified_at=utcnow(),
            failure_reason=None,
        )
    else:
        moved = move(
            session,
            PhysicalCopy,
            [copy.copy_id],
            CHECKABLE,
            result.state,
            failure_reason=result.reason,
        )
    return bool(moved)


def check_and_record(
    factory: sessionmaker[Session], storage: StorageBackend, copy: PackageCopy, checked_by: str
) -> CheckResult:
    result = read_in_full(storage, copy)
    with transaction(factory) as session:
        record_check(session, copy, result, checked_by)
    return result


def storages(
    factory: sessionmaker[Session], environ: Mapping[str, str]
) -> Callable[[int], StorageBackend]:
    """The storage of a location by id, made once per location."""
    made: dict[int, StorageBackend] = {}

    def storage_of(location_id: int) -> StorageBackend:
        if location_id not in made:
            with transaction(factory) as session:
                made[location_id] = storage_for(session.get_one(DataLocation, location_id), environ)
        return made[location_id]

    return storage_of


def restore(
    factory: sessionmaker[Session],
    package_id: int,
    target_location_id: int,
    storage_of: StorageOf,
    checked_by: str,
) -> Restored:
    """Write the package to the target location from another VERIFIED copy, checked on
    the way in; the target copy is then VERIFIED.

    A source found damaged on the way is recorded so and the next one is tried; a source
    that cannot be read now (an outage) is passed over. Without a good source the target
    stays as it was (a row made for the restore is FAILED); an outage of every source,
    or of the target, raises StorageError after the target row is put right.
    """
    with transaction(factory) as session:
        sources = [
            c
            for c in package_copies(session, package_id, states=(C.VERIFIED,))
            if c.location_id != target_location_id
        ]
        target_id = copies.pending_copy(
            session, RawDataPackagePhysicalCopy, package_id, target_location_id
        )
    read = 0
    problems: list[str] = []
    outage: Exception | None = None
    try:
        for source in sources:
            try:
                written = _copy_bytes(source, storage_of, target_location_id)
            except _SourceBad as bad:
                read += bad.result.bytes_read
                with transaction(factory) as session:
                    record_check(session, source, bad.result, checked_by)
                problems.append(f"{source.location_name}: {bad.result.reason}")
                continue
            except _SourceOut as out:
                outage = out.error
                problems.append(f"{source.location_name}: cannot be read now: {out.error}")
                continue
            read += written
            with transaction(factory) as session:
                _restored(session, target_id, source, written, checked_by)
            return Restored(True, read, f"restored from its copy at {source.location_name}")
    except BaseException:
        with transaction(factory) as session:
            _not_restored(session, target_id, "its restore failed on the target")
        raise
    with transaction(factory) as session:
        _not_restored(session, target_id, "no verified copy to write it from")
    if outage is not None:
        raise outage
    why = "; ".join(problems) or "no other verified copy exists"
    return Restored(False, read, f"cannot be restored: {why}")


class _SourceBad(Exception):
    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.reason)
        self.result = result


class _SourceOut(Exception):
    """Reading the source failed (not its bytes: the storage)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _copy_bytes(copy: PackageCopy, storage_of: StorageOf, target_location_id: int) -> int:
    """Stream the source into the target; the target's write checks size and checksum.

    The source is blamed (recorded bad) only for what it gave: more bytes than the
    package has, or all of them and wrong. A write that stopped early (a part the
    target refused) is the target's failure, raised as it is.
    """
    try:
        source = storage_of(copy.location_id)
    except StorageError as exc:  # e.g. a tape library this deployment cannot read
        raise _SourceOut(exc) from None
    counted = _Counted(source, copy)
    target = storage_of(target_location_id)
    try:
        target.write(copy.key, counted, checksum=copy.checksum, size=copy.size)
    except ChecksumMismatch as exc:
        if counted.bytes > copy.size or (counted.finished and not counted.right()):
            raise _SourceBad(CheckResult(C.CORRUPT, counted.bytes, str(exc))) from None
        raise
    return counted.bytes


class _Counted:
    """The source's chunks as they pass: counted, hashed, its errors told apart (a
    missing object is the source's; any other error of its storage is an outage, never
    a verdict on its bytes)."""

    def __init__(self, storage: StorageBackend, copy: PackageCopy) -> None:
        self._storage = storage
        self._copy = copy
        self._hash = xxhash.xxh3_128()
        self.bytes = 0
        self.finished = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._storage.read(self._copy.key):
                self.bytes += len(chunk)
                self._hash.update(chunk)
                yield chunk
        except ObjectNotFound:
            missing = CheckResult(C.MISSING, self.bytes, f"no object {self._copy.key}")
            raise _SourceBad(missing) from None
        except (StorageError, OSError) as exc:
            raise _SourceOut(exc) from None
        self.finished = True

    def right(self) -> bool:
        return self.bytes == self._copy.size and self._hash.hexdigest() == self._copy.checksum


def _restored(
    session: Session, target_id: int, source: PackageCopy, size: int, checked_by: str
) -> None:
    session.add(
        PhysicalCopyCheck(
            physical_copy_id=target_id,
            checked_at=utcnow(),
            outcome=C.VERIFIED,
            bytes_read=size,
            checked_by=checked_by[:40],
            reason=f"written from its copy at {source.location_name}, checked on the way in",
        )
    )
    copies.verified(session, target_id)


def _not_restored(session: Session, target_id: int, reason: str) -> None:
    """A target row made for the restore (PENDING) is FAILED; a CORRUPT or MISSING one
    stays what it was."""
    copy = session.get_one(PhysicalCopy, target_id)
    if copy.state is C.PENDING:
        copies.failed(session, target_id, reason)
