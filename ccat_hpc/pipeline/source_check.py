"""What a filed file is on SOURCE storage: checked the same way when it is filed and when
it is checksummed.

A file must be a regular file inside its location's root (no symbolic link, file or
folder, that leads out of it) with the size the manifest states. Filing also requires
a file to have one name on disk (a hard link could be a file that lives outside the
root) and records its device and inode, so the same bytes can never be filed twice
under two names. Checksumming opens the file without following a final link and
without waiting on a FIFO, and checks that what it opened is what it examined.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ccat_hpc.errors import ManifestError
from ccat_hpc.pipeline.manifest import ManifestFile

MAX_REPORTED_PROBLEMS = 5
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@dataclass(frozen=True)
class FileIdentity:
    """What a file is on disk, whatever its name: device and inode number, and its
    modification time, which tells the file from a later one given a reused inode number."""

    device: int
    inode: int
    mtime_ns: int = 0

    @property
    def place(self) -> tuple[int, int]:
        """(device, inode): where the file is on its file system."""
        return self.device, self.inode


def identity_of(info: os.stat_result) -> FileIdentity:
    return FileIdentity(info.st_dev, info.st_ino, info.st_mtime_ns)


def as_signed64(value: int) -> int:
    """An unsigned 64-bit device or inode number as the signed value a BIGINT column holds."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


class SourceProblem(Exception):
    """A file is not as filed; ``missing`` tells an absent file from a different one."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _unreadable(exc: OSError) -> SourceProblem:
    if exc.errno in _ABSENT:
        return SourceProblem("no such file", missing=True)
    return SourceProblem(f"cannot be read: {exc.strerror or exc}", missing=True)


class SourceTree:
    """Files below one location root; resolves each folder only once (fast for 100k files)."""

    def __init__(self, root: Path, stated: str = "the manifest says") -> None:
        self.root = os.path.realpath(root)
        self.stated = stated  # who stated the size, for messages
        self._dirs: dict[str, bool] = {}

    def require_root(self) -> None:
        if not os.path.isdir(self.root):
            raise ManifestError(f"location root {self.root} does not exist or is not a folder")

    def full_path(self, relative: str) -> str:
        return os.path.join(self.root, relative)

    def _dir_inside(self, directory: str) -> bool:
        known = self._dirs.get(directory)
        if known is None:
            known = _inside(os.path.realpath(directory), self.root)
            self._dirs[directory] = known
        return known

    def _target_stat(self, full: str) -> os.stat_result:
        """The file's own status; a symbolic link is followed only while it stays inside."""
        if not self._dir_inside(os.path.dirname(full)):
            raise SourceProblem("a folder on its path is a link that leaves the location root")
        try:
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                if not _inside(os.path.realpath(full), self.root):
                    raise SourceProblem("is a symbolic link that leaves the location root")
                info = os.stat(full)
        except OSError as exc:
            raise _unreadable(exc) from None
        return info

    def examine(self, relative: str, size: int, *, single_name: bool) -> FileIdentity:
        """Check one file against its stated size; raise SourceProblem when it differs."""
        info = self._target_stat(self.full_path(relative))
        check_status(info, size, self.stated)
        if single_name and info.st_nlink > 1:
            raise SourceProblem(
                f"has {info.st_nlink} names on disk (hard links); a filed file must have one"
            )
        return identity_of(info)

    def identity_now(self, relative: str) -> FileIdentity | None:
        """What is at ``relative`` now (through links that stay inside); None if nothing is."""
        try:
            info = self._target_stat(self.full_path(relative))
        except SourceProblem:
            return None
        return identity_of(info)

    def open_checked(self, relative: str, size: int, filed_inode: int | None = None) -> int:
        """A read-only descriptor of the examined file (never a FIFO, never through a link).

        With ``filed_inode`` (as recorded when it was filed), the file must still be that
        inode: another file put in its place, or a link to one, is not the filed file.
        Only the inode is compared: a network file system's device number can differ
        between the node that filed a file and the node that checks it.
        """
        full = self.full_path(relative)
        identity = self.examine(relative, size, single_name=False)
        if filed_inode is not None and as_signed64(identity.inode) != filed_inode:
            raise SourceProblem(
                "is not the file that was filed: another file, or a link to one, is at its path now"
            )
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(os.path.realpath(full), flags)
        except OSError as exc:
            raise _unreadable(exc) from None
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != identity.place:
            os.close(fd)
            raise SourceProblem("was replaced by another file while being checked")
        return fd


def check_status(info: os.stat_result, size: int, stated: str) -> None:
    """A regular file of ``size`` bytes, or SourceProblem (pure)."""
    if not stat.S_ISREG(info.st_mode):
        raise SourceProblem(f"is {_kind(info.st_mode)}, not a regular file")
    if info.st_size != size:
        raise SourceProblem(f"is {info.st_size} bytes on disk, {stated} {size}")


def check_source_files(root: Path, files: Sequence[ManifestFile]) -> list[FileIdentity]:
    """The identity of every listed file; one ManifestError listing the first problems.

    Two entries that are the same file on disk (a link to another listed file) are
    refused too.
    """
    tree = SourceTree(root)
    tree.require_root()
    identities: list[FileIdentity] = []
    seen: dict[tuple[int, int], int] = {}
    problems: list[str] = []
    for index, entry in enumerate(files):
        try:
            identity = tree.examine(entry.path, entry.size, single_name=True)
        except SourceProblem as exc:
            problems.append(f"files[{index}] {entry.path}: {exc.reason}")
            continue
        first = seen.setdefault(identity.place, index)
        if first != index:
            problems.append(
                f"files[{index}] {entry.path}: is the same file on disk as "
                f"files[{first}] {files[first].path}"
            )
        identities.append(identity)
    if problems:
        raise ManifestError(problems_line(problems))
    return identities


def problems_line(problems: Sequence[str]) -> str:
    """The first problems on one line, and how many more there are (pure)."""
    shown = problems[:MAX_REPORTED_PROBLEMS]
    more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
    return "; ".join(shown) + more
