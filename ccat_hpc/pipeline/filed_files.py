"""One file on SOURCE storage, one RawDataFile: the check before filing inserts.

The database enforces it (unique path, and unique device and inode, per SOURCE
location; see :class:`ccat_hpc.db.models.RawDataFile`), so two concurrent filers
cannot both win. This check runs first so that the loser, and anyone filing a file a
second time, is told which execution already holds it. Functions take a session and
never commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.models import RawDataFile
from ccat_hpc.errors import ManifestConflict
from ccat_hpc.pipeline.manifest import ManifestFile
from ccat_hpc.pipeline.source_check import (
    FileIdentity,
    SourceTree,
    as_signed64,
    problems_line,
)

FILE_TYPE_LENGTH = 40
QUERY_CHUNK = 500
T = TypeVar("T")


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), QUERY_CHUNK):
        yield values[start : start + QUERY_CHUNK]


def filed_paths(session: Session, location_id: int, paths: Sequence[str]) -> dict[str, str]:
    """Path → execution id, for the given paths already filed at the location."""
    found: dict[str, str] = {}
    for chunk in _chunks(paths):
        rows = session.execute(
            select(RawDataFile.relative_path, RawDataFile.executed_obs_unit_id).where(
                RawDataFile.source_location_id == location_id,
                RawDataFile.relative_path.in_(chunk),
            )
        )
        found.update((path, str(execution)) for path, execution in rows)
    return found


@dataclass(frozen=True)
class Holder:
    """A filed file at the location, as recorded: who may hold a file on disk."""

    file_id: int
    inode: int
    path: str
    execution: str


def _holders_of_inodes(
    session: Session, location_id: int, inodes: Sequence[int]
) -> dict[int, list[Holder]]:
    found: dict[int, list[Holder]] = defaultdict(list)
    for chunk in _chunks(sorted(set(inodes))):
        rows = session.execute(
            select(
                RawDataFile.id,
                RawDataFile.source_inode,
                RawDataFile.relative_path,
                RawDataFile.executed_obs_unit_id,
            ).where(
                RawDataFile.source_location_id == location_id,
                RawDataFile.source_inode.in_(chunk),
            )
        )
        for file_id, inode, path, execution in rows:
            if inode is not None:
                found[inode].append(Holder(file_id, inode, path, str(execution)))
    return found


def same_file_holders(
    session: Session, tree: SourceTree, location_id: int, identities: Sequence[FileIdentity]
) -> dict[FileIdentity, Holder]:
    """For each file on disk, a filed file that is that same file *now*.

    A holder is compared by looking at its path now, on this machine: a holder whose
    file is gone or replaced (its inode may have been reused by the new file) is not a
    conflict. Its device is cleared, which lets the database take the new file's
    identity; its inode stays, so the checksum step still finds that whatever is at the
    holder's path now is not the file that was filed.
    """
    candidates = _holders_of_inodes(
        session, location_id, [as_signed64(i.inode) for i in identities]
    )
    found: dict[FileIdentity, Holder] = {}
    stale: list[int] = []
    for identity in identities:
        for holder in candidates.get(as_signed64(identity.inode), []):
            now = tree.identity_now(holder.path)
            if now == identity:
                found[identity] = holder
            elif now is None or as_signed64(now.inode) != holder.inode:
                stale.append(holder.file_id)
    if stale:
        session.execute(
            update(RawDataFile).where(RawDataFile.id.in_(stale)).values(source_device=None)
        )
    return found


def check_not_filed_elsewhere(
    session: Session,
    location_id: int,
    root: Path,
    files: Sequence[ManifestFile],
    identities: Sequence[FileIdentity],
) -> None:
    """Raise ManifestConflict naming the holder of any path or on-disk file already filed."""
    by_path = filed_paths(session, location_id, [entry.path for entry in files])
    by_identity = same_file_holders(session, SourceTree(root), location_id, identities)
    problems = []
    for index, (entry, identity) in enumerate(zip(files, identities, strict=True)):
        problem = _conflict(entry, by_path.get(entry.path), by_identity.get(identity))
        if problem is not None:
            problems.append(f"files[{index}] {entry.path}: {problem}")
    if problems:
        raise ManifestConflict(problems_line(problems))


def _conflict(entry: ManifestFile, execution: str | None, holder: Holder | None) -> str | None:
    if execution is not None:
        return f"already filed for execution {execution}"
    if holder is not None:
        return (
            f"is the same file on disk as {holder.path}, already filed for execution "
            f"{holder.execution}"
        )
    return None
