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
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import RawDataFile
from ccat_hpc.errors import ManifestConflict
from ccat_hpc.pipeline.manifest import ManifestFile
from ccat_hpc.pipeline.source_check import FileIdentity, problems_line

FILE_TYPE_LENGTH = 40
QUERY_CHUNK = 500
T = TypeVar("T")


def as_signed64(value: int) -> int:
    """An unsigned 64-bit device or inode number as the signed value a BIGINT column holds."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


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


def filed_identities(
    session: Session, location_id: int, identities: Sequence[FileIdentity]
) -> dict[tuple[int, int], tuple[str, str]]:
    """(device, inode) → (path, execution id), for files on disk already filed there."""
    inodes_by_device: dict[int, list[int]] = defaultdict(list)
    for identity in identities:
        inodes_by_device[as_signed64(identity.device)].append(as_signed64(identity.inode))
    found: dict[tuple[int, int], tuple[str, str]] = {}
    for device, inodes in inodes_by_device.items():
        for chunk in _chunks(inodes):
            rows = session.execute(
                select(
                    RawDataFile.source_inode,
                    RawDataFile.relative_path,
                    RawDataFile.executed_obs_unit_id,
                ).where(
                    RawDataFile.source_location_id == location_id,
                    RawDataFile.source_device == device,
                    RawDataFile.source_inode.in_(chunk),
                )
            )
            for inode, path, execution in rows:
                if inode is not None:
                    found[(device, inode)] = (path, str(execution))
    return found


def check_not_filed_elsewhere(
    session: Session,
    location_id: int,
    files: Sequence[ManifestFile],
    identities: Sequence[FileIdentity],
) -> None:
    """Raise ManifestConflict naming the holder of any path or on-disk file already filed."""
    by_path = filed_paths(session, location_id, [entry.path for entry in files])
    by_identity = filed_identities(session, location_id, identities)
    problems = []
    for index, (entry, identity) in enumerate(zip(files, identities, strict=True)):
        problem = _conflict(entry, identity, by_path, by_identity)
        if problem is not None:
            problems.append(f"files[{index}] {entry.path}: {problem}")
    if problems:
        raise ManifestConflict(problems_line(problems))


def _conflict(
    entry: ManifestFile,
    identity: FileIdentity,
    by_path: dict[str, str],
    by_identity: dict[tuple[int, int], tuple[str, str]],
) -> str | None:
    execution = by_path.get(entry.path)
    if execution is not None:
        return f"already filed for execution {execution}"
    holder = by_identity.get((as_signed64(identity.device), as_signed64(identity.inode)))
    if holder is not None:
        return f"is the same file on disk as {holder[0]}, already filed for execution {holder[1]}"
    return None
