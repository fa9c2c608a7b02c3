"""The checksum step: xxh3-128 of newly filed RawDataFiles, on their SOURCE copy.

Submission claims the files (FILED → CHECKSUMMING), so a second submission finds
nothing to do; files of a task that ends without recording them are released back to
FILED. A task loads its claimed files in one query, checks each one on disk exactly
as filing did (:mod:`ccat_hpc.pipeline.source_check`: a regular file inside the root,
no link leading out, the filed size; never waiting on a FIFO), hashes it (streaming,
bounded memory) and records the outcomes in groups:

- the manifest had no checksum, or it matches: file CHECKSUMMED, copy VERIFIED;
- it differs, or the file is no longer what was filed (size, kind, a link leading
  out of the root, it changed while being read): file and copy CORRUPT, with the reason;
- the file is gone or unreadable: file and copy MISSING, with the reason.

Every outcome is also a RawDataFileCheck row: the history an operator reads after a
repair and a re-check (:func:`requeue_for_check`). Outcomes already computed are
recorded even when the task stops early (an error, or SIGTERM at its time limit).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xxhash
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DiskDataLocation,
    RawDataFile,
    RawDataFilePhysicalCopy,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import RawDataFileState
from ccat_hpc.engine.positional import read_at
from ccat_hpc.pipeline.checksum_records import (
    COPY_STATE,
    FileOutcome,
    Target,
    held_by,
    record_outcomes,
)
from ccat_hpc.pipeline.source_check import SourceProblem, SourceTree
from ccat_hpc.pipeline.tasks import StopRequest, TaskContext

#: Reads of this size stay in the CPU cache while they are hashed (2x faster than 1 MiB here)
READ_SIZE = 256 * 1024
RECORD_EVERY = 500
RECORD_EVERY_SECONDS = 10.0
DEFAULT_BYTES_PER_TASK = 4 * 1024**3
DEFAULT_FILES_PER_TASK = 5000
FILED_WITH = "it was filed with"


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


def hash_descriptor(fd: int, buffer: bytearray, stop: StopRequest) -> tuple[str, int]:
    """xxh3-128 of everything readable from ``fd``, and how many bytes that was.

    A requested stop interrupts it between reads (TaskInterrupted).
    """
    hasher = xxhash.xxh3_128()
    view = memoryview(buffer)
    offset = 0
    while count := read_at(fd, view, offset):
        stop.check()
        hasher.update(view[:count])
        offset += count
        if count < len(view):
            break
    return str(hasher.hexdigest()), offset


def judge(
    where: str, expected: str | None, computed: str | None, problem: str | None = None
) -> FileOutcome:
    """What to record for one file that was read (pure); a reason starts with ``where``."""
    if problem is not None or computed is None:
        return FileOutcome(RawDataFileState.MISSING, None, f"{where}: {problem or 'not hashed'}")
    if expected is not None and expected.lower() != computed:
        reason = f"{where}: xxh3-128 on disk is {computed}, the manifest says {expected.lower()}"
        return FileOutcome(RawDataFileState.CORRUPT, computed, reason)
    return FileOutcome(RawDataFileState.CHECKSUMMED, computed, None)


def load_targets(session: Session, file_ids: Sequence[int], batch_id: int) -> list[Target]:
    """The files among ``file_ids`` that ``batch_id`` holds, with their SOURCE copy (one query)."""
    rows = session.execute(
        select(
            RawDataFile.id,
            RawDataFilePhysicalCopy.id,
            DiskDataLocation.path,
            RawDataFile.relative_path,
            RawDataFile.checksum,
            RawDataFile.size,
            RawDataFile.source_inode,
            RawDataFile.source_location_id,
        )
        .outerjoin(DiskDataLocation, DiskDataLocation.id == RawDataFile.source_location_id)
        .outerjoin(
            RawDataFilePhysicalCopy,
            and_(
                RawDataFilePhysicalCopy.raw_data_file_id == RawDataFile.id,
                RawDataFilePhysicalCopy.data_location_id == RawDataFile.source_location_id,
            ),
        )
        .where(
            RawDataFile.id.in_(file_ids),
            RawDataFile.state == RawDataFileState.CHECKSUMMING,
            held_by(batch_id),
        )
    ).all()
    targets = {row[0]: Target(*row) for row in rows}
    return [targets[i] for i in file_ids if i in targets]


class Hasher:
    """Checks and hashes targets; one SourceTree per location root, one read buffer."""

    def __init__(self, stop: StopRequest, read_size: int = READ_SIZE) -> None:
        self.buffer = bytearray(read_size)
        self.trees: dict[str, SourceTree] = {}
        self.stop = stop

    def outcome(self, target: Target) -> FileOutcome:
        if target.copy_id is None or target.root is None:
            return judge(target.where, target.expected, None, "no SOURCE copy on disk is recorded")
        tree = self.trees.setdefault(target.root, SourceTree(Path(target.root), FILED_WITH))
        try:
            fd = tree.open_checked(target.relative_path, target.size, target.filed_inode)
        except SourceProblem as exc:
            return _problem_outcome(target, exc)
        try:
            computed, count = hash_descriptor(fd, self.buffer, self.stop)
        except OSError as exc:
            return judge(target.where, target.expected, None, str(exc.strerror or exc))
        finally:
            os.close(fd)
        if count != target.size:
            reason = (
                f"{target.where}: changed while being read ({count} bytes, filed {target.size})"
            )
            return FileOutcome(RawDataFileState.CORRUPT, None, reason)
        return judge(target.where, target.expected, computed)


def _problem_outcome(target: Target, problem: SourceProblem) -> FileOutcome:
    state = RawDataFileState.MISSING if problem.missing else RawDataFileState.CORRUPT
    return FileOutcome(state, None, f"{target.where}: {problem.reason}")


class OutcomeRecorder:
    """Collects outcomes and commits them in groups (by count or by time)."""

    def __init__(self, context: TaskContext) -> None:
        self.context = context
        self.group: list[tuple[Target, FileOutcome]] = []
        self.counts = {state.value: 0 for state in COPY_STATE}
        self.hashed_bytes = 0
        self.last = time.monotonic()

    def add(self, target: Target, outcome: FileOutcome) -> None:
        self.group.append((target, outcome))
        self.counts[outcome.state.value] += 1
        self.hashed_bytes += target.size if outcome.checksum else 0
        if len(self.group) >= RECORD_EVERY or time.monotonic() - self.last > RECORD_EVERY_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.group:
            with transaction(self.context.factory) as session:
                record_outcomes(session, self.group, self.context.batch_id)
        self.group, self.last = [], time.monotonic()


def checksum_task(context: TaskContext) -> dict[str, Any]:
    """The checksum job's handler: check and hash every file of the task, record in groups.

    Whatever stops the loop (an error, or a stop requested by SIGTERM at the time limit,
    checked between reads), the outcomes already computed are recorded; files not reached
    stay claimed until the runner gives them back.
    """
    with context.factory() as session:
        targets = load_targets(session, [int(i) for i in context.items], context.batch_id)
    hasher = Hasher(context.stop)
    recorder = OutcomeRecorder(context)
    try:
        for target in targets:
            context.stop.check()
            recorder.add(target, hasher.outcome(target))
    finally:
        recorder.flush()
    return {**recorder.counts, "bytes": recorder.hashed_bytes}
