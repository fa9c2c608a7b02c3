"""The checksum step's bookkeeping in ops-db: claims on files, and recorded outcomes.

A file is claimed (FILED → CHECKSUMMING) by one batch, which is named on it; only that
batch's tasks record an outcome for it or give it back, so no file is recorded twice
even when a batch is forced closed under a running task. Recording an outcome moves
the file and its SOURCE copy, keeps the reason, and adds a RawDataFileCheck row (the
history). One file on disk filed as two records (possible when a filed folder was
moved and touched and its files filed again) is caught here too: the later record is
not verified, it is recorded CORRUPT naming the earlier one. Functions take a session
and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.bulk import insert_rows
from ccat_hpc.db.models import PhysicalCopy, RawDataFile, RawDataFileCheck
from ccat_hpc.db.states import PhysicalCopyState, RawDataFileState
from ccat_hpc.db.transitions import move
from ccat_hpc.pipeline.source_check import SourceTree

#: copy states a check may start from (its outcome replaces them)
CHECKABLE_COPY_STATES = (
    PhysicalCopyState.PRESENT,
    PhysicalCopyState.VERIFIED,
    PhysicalCopyState.CORRUPT,
    PhysicalCopyState.MISSING,
)
#: file states an operator may ask to check again
RECHECKABLE_STATES = (
    RawDataFileState.CHECKSUMMED,
    RawDataFileState.CORRUPT,
    RawDataFileState.MISSING,
)


@dataclass(frozen=True)
class FileOutcome:
    state: RawDataFileState
    checksum: str | None
    reason: str | None


COPY_STATE = {
    RawDataFileState.CHECKSUMMED: PhysicalCopyState.VERIFIED,
    RawDataFileState.CORRUPT: PhysicalCopyState.CORRUPT,
    RawDataFileState.MISSING: PhysicalCopyState.MISSING,
}


@dataclass(frozen=True)
class Target:
    file_id: int
    copy_id: int | None
    root: str | None
    relative_path: str
    expected: str | None
    size: int
    filed_inode: int | None
    location_id: int | None

    @property
    def where(self) -> str:
        return str(Path(self.root) / self.relative_path) if self.root else self.relative_path


def files_to_checksum(session: Session) -> list[tuple[int, int]]:
    """(id, size) of every FILED file, in id order."""
    rows = session.execute(
        select(RawDataFile.id, RawDataFile.size)
        .where(RawDataFile.state == RawDataFileState.FILED)
        .order_by(RawDataFile.id)
    )
    return [(int(file_id), int(size)) for file_id, size in rows]


def claim_files(session: Session, files: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Claim FILED files (→ CHECKSUMMING); returns those this caller got. The caller names
    the batch that holds them with :func:`assign_claims` in the same transaction."""
    got = set(
        move(
            session,
            RawDataFile,
            [i for i, _ in files],
            RawDataFileState.FILED,
            RawDataFileState.CHECKSUMMING,
        )
    )
    return [(file_id, size) for file_id, size in files if file_id in got]


def assign_claims(session: Session, file_ids: Sequence[int], batch_id: int) -> None:
    """Name the batch holding these freshly claimed files: only its tasks record them."""
    session.execute(
        update(RawDataFile)
        .where(RawDataFile.id.in_(file_ids), RawDataFile.claimed_by_batch_id.is_(None))
        .values(claimed_by_batch_id=batch_id)
    )


def held_by(batch_id: int) -> ColumnElement[bool]:
    return RawDataFile.claimed_by_batch_id == batch_id


def release_files(session: Session, file_ids: Sequence[Any], batch_id: int) -> int:
    """Give back files ``batch_id`` holds without an outcome (CHECKSUMMING → FILED)."""
    ids = [int(i) for i in file_ids]
    moved = move(
        session,
        RawDataFile,
        ids,
        RawDataFileState.CHECKSUMMING,
        RawDataFileState.FILED,
        only=[held_by(batch_id)],
        claimed_by_batch_id=None,
    )
    return len(moved)


def requeue_for_check(session: Session, file_ids: Sequence[int]) -> int:
    """Put checked files (checksummed, corrupt, missing) back to FILED for another check.

    Their checksum stays: a file that had one is checked against it. Their earlier
    outcomes stay in RawDataFileCheck.
    """
    return len(
        move(
            session,
            RawDataFile,
            list(file_ids),
            RECHECKABLE_STATES,
            RawDataFileState.FILED,
            failure_reason=None,
        )
    )


def record_outcomes(
    session: Session, outcomes: Sequence[tuple[Target, FileOutcome]], batch_id: int
) -> None:
    """Record a group of outcomes: file and copy states, reasons, history (caller commits).

    Only files ``batch_id`` still holds are recorded: one given back meanwhile (its task
    was declared dead, its batch cancelled) belongs to whichever batch claims it next,
    so no file is ever recorded twice.
    """
    now = utcnow()
    outcomes = refuse_second_records(session, outcomes)
    for state, group in _by_state(outcomes).items():
        moved = set(
            move(
                session,
                RawDataFile,
                [t.file_id for t, _ in group],
                RawDataFileState.CHECKSUMMING,
                state,
                only=[held_by(batch_id)],
                claimed_by_batch_id=None,
            )
        )
        kept = [(t, o) for t, o in group if t.file_id in moved]
        if kept:
            _record_group(session, state, kept, now, batch_id)


def _by_state(
    outcomes: Sequence[tuple[Target, FileOutcome]],
) -> dict[RawDataFileState, list[tuple[Target, FileOutcome]]]:
    groups: dict[RawDataFileState, list[tuple[Target, FileOutcome]]] = {}
    for target, outcome in outcomes:
        groups.setdefault(outcome.state, []).append((target, outcome))
    return groups


def _record_group(
    session: Session,
    state: RawDataFileState,
    group: Sequence[tuple[Target, FileOutcome]],
    now: datetime,
    batch_id: int,
) -> None:
    verified = state == RawDataFileState.CHECKSUMMED
    file_values = [
        {"id": t.file_id, "failure_reason": o.reason}
        | ({"checksum": o.checksum, "checksum_algorithm": "xxh3_128"} if verified else {})
        for t, o in group
    ]
    session.execute(update(RawDataFile), file_values)
    copies = [(t, o) for t, o in group if t.copy_id is not None]
    copy_state = COPY_STATE[state]
    extra: dict[str, Any] = {"verified_at": now} if verified else {}
    move(
        session,
        PhysicalCopy,
        [t.copy_id for t, _ in copies],
        CHECKABLE_COPY_STATES,
        copy_state,
        **extra,
    )
    if copies:
        session.execute(
            update(PhysicalCopy), [{"id": t.copy_id, "failure_reason": o.reason} for t, o in copies]
        )
    insert_rows(session, RawDataFileCheck, _history_rows(state, group, now, batch_id))


def _history_rows(
    state: RawDataFileState,
    group: Sequence[tuple[Target, FileOutcome]],
    now: datetime,
    batch_id: int,
) -> list[dict[str, Any]]:
    return [
        {
            "raw_data_file_id": t.file_id,
            "physical_copy_id": t.copy_id,
            "job_batch_id": batch_id,
            "checked_at": now,
            "outcome": state,
            "computed_checksum": o.checksum,
            "expected_checksum": t.expected,
            "reason": o.reason,
        }
        for t, o in group
    ]


def refuse_second_records(
    session: Session, outcomes: Sequence[tuple[Target, FileOutcome]]
) -> list[tuple[Target, FileOutcome]]:
    """Outcomes, with a verified file turned CORRUPT when an earlier record at its
    location is the very same file on disk now (one file filed twice)."""
    checked = [(t, o) for t, o in outcomes if o.state == RawDataFileState.CHECKSUMMED]
    earlier = _earlier_records(session, [t for t, _ in checked])
    result = []
    for target, outcome in outcomes:
        twin = _twin(target, earlier) if outcome.state == RawDataFileState.CHECKSUMMED else None
        if twin is not None:
            reason = (
                f"{target.where}: is the same file on disk as {twin[1]} (file {twin[0]}), "
                "filed before it: one file on disk is filed once"
            )
            outcome = replace(outcome, state=RawDataFileState.CORRUPT, reason=reason)
        result.append((target, outcome))
    return result


def _earlier_records(
    session: Session, targets: Sequence[Target]
) -> dict[tuple[int, int], list[tuple[int, str]]]:
    """(location, inode) → [(file id, path)] of every record with one of these inodes."""
    keys = {(t.location_id, t.filed_inode) for t in targets}
    inodes = sorted({inode for _, inode in keys if inode is not None})
    found: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for start in range(0, len(inodes), 500):
        rows = session.execute(
            select(
                RawDataFile.source_location_id,
                RawDataFile.source_inode,
                RawDataFile.id,
                RawDataFile.relative_path,
            ).where(RawDataFile.source_inode.in_(inodes[start : start + 500]))
        )
        for location, inode, file_id, path in rows:
            if (location, inode) in keys and inode is not None:
                found.setdefault((location, inode), []).append((file_id, path))
    return found


def _twin(
    target: Target, earlier: dict[tuple[int, int], list[tuple[int, str]]]
) -> tuple[int, str] | None:
    """An earlier record that is the same file on disk as ``target`` now, if any."""
    if target.location_id is None or target.filed_inode is None or target.root is None:
        return None
    tree = SourceTree(Path(target.root))
    mine = tree.identity_now(target.relative_path)
    for file_id, path in earlier.get((target.location_id, target.filed_inode), []):
        if file_id < target.file_id and mine is not None:
            other = tree.identity_now(path)
            if other is not None and other.place == mine.place:
                return file_id, path
    return None
