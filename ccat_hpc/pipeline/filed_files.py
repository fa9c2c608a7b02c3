"""One file on SOURCE storage, one RawDataFile: the check before filing inserts.

The database enforces it (unique path, and unique device and inode, per SOURCE
location; see :class:`ccat_hpc.db.models.RawDataFile`), so two concurrent filers
cannot both win. This check runs first so that the loser, and anyone filing a file a
second time, is told which execution already holds it. Functions take a session and
never commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.models import RawDataFile
from ccat_hpc.db.transitions import in_chunks
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


def filed_paths(session: Session, location_id: int, paths: Sequence[str]) -> dict[str, str]:
    """Path → execution id, for the given paths already filed at the location."""
    found: dict[str, str] = {}
    for chunk in in_chunks(paths, QUERY_CHUNK):
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
    device: int | None
    inode: int
    mtime_ns: int | None
    path: str
    execution: str

    def recorded_as(self, identity: FileIdentity) -> bool:
        """Whether ``identity`` is what was recorded for this file when it was filed."""
        return (self.device, self.inode, self.mtime_ns) == (
            as_signed64(identity.device),
            as_signed64(identity.inode),
            identity.mtime_ns,
        )

    def place_recorded(self, identity: FileIdentity) -> bool:
        """Whether ``identity`` has this file's recorded device and inode (not its mtime)."""
        return (self.device, self.inode) == (
            as_signed64(identity.device),
            as_signed64(identity.inode),
        )


def _holders_of_inodes(
    session: Session, location_id: int, inodes: Sequence[int]
) -> dict[int, list[Holder]]:
    found: dict[int, list[Holder]] = defaultdict(list)
    for chunk in in_chunks(sorted(set(inodes)), QUERY_CHUNK):
        rows = session.execute(
            select(
                RawDataFile.id,
                RawDataFile.source_device,
                RawDataFile.source_inode,
                RawDataFile.source_mtime_ns,
                RawDataFile.relative_path,
                RawDataFile.executed_obs_unit_id,
            ).where(
                RawDataFile.source_location_id == location_id,
                RawDataFile.source_inode.in_(chunk),
            )
        )
        for file_id, device, inode, mtime_ns, path, execution in rows:
            if inode is not None:
                holder = Holder(file_id, device, inode, mtime_ns, path, str(execution))
                found[inode].append(holder)
    return found


def same_file_holders(
    session: Session, tree: SourceTree, location_id: int, identities: Sequence[FileIdentity]
) -> dict[tuple[int, int], Holder]:
    """For each file on disk (by device and inode), a filed file that is that same file.

    It is the same file when it has exactly the device, inode and modification time
    recorded for the filed one, wherever that one's path points now (a folder moved
    for a moment changes nothing), or when the filed one's path leads to it now (a
    network file system may show another device number on this machine). A file with
    the recorded device and inode but another modification time is a new file that
    was given the number of a filed file gone from disk: not a conflict, and the gone
    file's device is cleared so the database takes the new one (its inode stays, for
    the checksum step to tell whatever is at its path now from the filed file).
    """
    candidates = _holders_of_inodes(
        session, location_id, [as_signed64(i.inode) for i in identities]
    )
    found: dict[tuple[int, int], Holder] = {}
    stale: list[int] = []
    for identity in identities:
        for holder in candidates.get(as_signed64(identity.inode), []):
            if _same_file(tree, holder, identity):
                found[identity.place] = holder
            elif holder.place_recorded(identity):
                stale.append(holder.file_id)
    if stale:
        session.execute(
            update(RawDataFile).where(RawDataFile.id.in_(stale)).values(source_device=None)
        )
    return found


def _same_file(tree: SourceTree, holder: Holder, identity: FileIdentity) -> bool:
    if holder.recorded_as(identity):
        return True
    now = tree.identity_now(holder.path)
    return now is not None and now.place == identity.place


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
        problem = _conflict(entry, by_path.get(entry.path), by_identity.get(identity.place))
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
