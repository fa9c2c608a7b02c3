"""The checksum step: xxh3-128 of newly filed RawDataFiles, on their SOURCE copy.

Files in state FILED are planned into tasks by bytes (:func:`plan_tasks`, pure). A
task hashes its files (streaming, bounded memory) and records, per file, in one
transaction per file:

- no checksum in the manifest: the computed one; file CHECKSUMMED, copy VERIFIED;
- the manifest's checksum matches: file CHECKSUMMED, copy VERIFIED;
- it differs: file and copy CORRUPT, with both checksums in the reason;
- the file is gone or unreadable: file and copy MISSING, with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash
from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import DiskDataLocation, RawDataFile, RawDataFilePhysicalCopy
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import LocationType, PhysicalCopyState, RawDataFileState

if TYPE_CHECKING:
    from ccat_hpc.jobs.runner import TaskContext

READ_SIZE = 1024 * 1024
DEFAULT_BYTES_PER_TASK = 4 * 1024**3
DEFAULT_FILES_PER_TASK = 5000


def plan_tasks(
    files: Sequence[tuple[int, int]],
    bytes_per_task: int = DEFAULT_BYTES_PER_TASK,
    files_per_task: int = DEFAULT_FILES_PER_TASK,
) -> list[list[int]]:
    """File ids in tasks of about ``bytes_per_task`` (a larger file gets a task alone)."""
    tasks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for file_id, file_size in files:
        if current and (size + file_size > bytes_per_task or len(current) >= files_per_task):
            tasks.append(current)
            current, size = [], 0
        current.append(file_id)
        size += file_size
    if current:
        tasks.append(current)
    return tasks


def files_to_checksum(session: Session) -> list[tuple[int, int]]:
    """(id, size) of every FILED file, in id order."""
    rows = session.execute(
        select(RawDataFile.id, RawDataFile.size)
        .where(RawDataFile.state == RawDataFileState.FILED)
        .order_by(RawDataFile.id)
    )
    return [(int(file_id), int(size)) for file_id, size in rows]


def hash_file(path: Path, buffer: bytearray) -> str:
    hasher = xxhash.xxh3_128()
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hasher.update(view[:count])
    return str(hasher.hexdigest())


@dataclass(frozen=True)
class FileOutcome:
    state: RawDataFileState
    checksum: str | None
    reason: str | None


def judge(expected: str | None, computed: str | None, problem: str | None) -> FileOutcome:
    """What to record for one file (pure)."""
    if problem is not None or computed is None:
        return FileOutcome(RawDataFileState.MISSING, None, problem or "not hashed")
    if expected is not None and expected.lower() != computed:
        reason = f"xxh3-128 on disk is {computed}, the manifest says {expected.lower()}"
        return FileOutcome(RawDataFileState.CORRUPT, computed, reason)
    return FileOutcome(RawDataFileState.CHECKSUMMED, computed, None)


_COPY_STATE = {
    RawDataFileState.CHECKSUMMED: PhysicalCopyState.VERIFIED,
    RawDataFileState.CORRUPT: PhysicalCopyState.CORRUPT,
    RawDataFileState.MISSING: PhysicalCopyState.MISSING,
}


def _source_copy(session: Session, file_id: int) -> tuple[RawDataFilePhysicalCopy, Path] | None:
    row = session.execute(
        select(RawDataFilePhysicalCopy, DiskDataLocation.path)
        .join(DiskDataLocation, RawDataFilePhysicalCopy.data_location_id == DiskDataLocation.id)
        .where(
            RawDataFilePhysicalCopy.raw_data_file_id == file_id,
            DiskDataLocation.location_type == LocationType.SOURCE,
        )
    ).first()
    return None if row is None else (row[0], Path(row[1]))


def checksum_one(session: Session, file_id: int, buffer: bytearray) -> FileOutcome | None:
    """Hash one file's SOURCE copy and record the outcome (caller commits)."""
    raw = session.get(RawDataFile, file_id)
    if raw is None or raw.state != RawDataFileState.FILED:
        return None  # done by an earlier attempt
    found = _source_copy(session, file_id)
    computed, problem = None, None
    if found is None:
        problem = "no SOURCE copy on disk is recorded"
    else:
        try:
            computed = hash_file(found[1] / raw.relative_path, buffer)
        except OSError as exc:
            problem = f"{found[1] / raw.relative_path}: {exc.strerror or exc}"
    outcome = judge(raw.checksum, computed, problem)
    raw.state, raw.failure_reason = outcome.state, outcome.reason
    if outcome.state == RawDataFileState.CHECKSUMMED:
        raw.checksum, raw.checksum_algorithm = outcome.checksum, "xxh3_128"
    if found is not None:
        copy = found[0]
        copy.state, copy.failure_reason = _COPY_STATE[outcome.state], outcome.reason
        if outcome.state == RawDataFileState.CHECKSUMMED:
            copy.verified_at = utcnow()
    return outcome


def checksum_task(context: TaskContext) -> dict[str, Any]:
    """The checksum job's handler: every file of the task, one transaction each."""
    buffer = bytearray(READ_SIZE)
    counts = {state.value: 0 for state in _COPY_STATE}
    hashed_bytes = 0
    for file_id in context.items:
        with transaction(context.factory) as session:
            outcome = checksum_one(session, int(file_id), buffer)
            if outcome is not None:
                counts[outcome.state.value] += 1
                raw = session.get(RawDataFile, int(file_id))
                hashed_bytes += raw.size if raw is not None and outcome.checksum else 0
    return {**counts, "bytes": hashed_bytes, "host_pid": os.getpid()}
