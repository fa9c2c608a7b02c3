"""Extracting members: range reads into one folder, never outside it, all or nothing.

Member names are clean relative paths (the index is checked when read), but the
target folder may hold anything, such as a symbolic link planted where a member's
folder or its partial file will be. So an extract walks down from the target folder
one component at a time with folder descriptors opened ``O_NOFOLLOW`` (a link is
refused, never followed), creates every partial file ``O_CREAT | O_EXCL | O_NOFOLLOW``
inside its folder's descriptor under a name of its own (``.NAME.<random>.ccat-partial``,
never the name of a member or of anything already there, so no file of the user's is
ever replaced or removed as "a partial"), verifies and fsyncs it, and only when every
requested member is written renames them all into place. Any failure removes the
partial files, the members already renamed, and the folders the extract created. (A
killed extract can leave its hidden partial files behind; nothing reads them.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import xxhash

from ccat_hpc.engine.errors import EngineError, PackageCorrupt
from ccat_hpc.engine.index import IndexEntry, PackageIndex, check_member_name
from ccat_hpc.engine.positional import write_at
from ccat_hpc.engine.reader import DEFAULT_READ_SIZE, RangeSource, read_index

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PARTIAL_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def select_members(index: PackageIndex, requests: Sequence[str]) -> list[IndexEntry]:
    """The requested entries: a member by its name, or every member below a folder
    (``obs/scan1`` or ``obs/scan1/``). Unsafe or unknown names fail before anything is read."""
    for request in requests:
        check_member_name(request.rstrip("/"))
    by_name = {entry.name: entry for entry in index.members}
    chosen: dict[str, IndexEntry] = {}
    missing = []
    for request in requests:
        if request in by_name:
            chosen[request] = by_name[request]
            continue
        prefix = request.rstrip("/") + "/"
        below = [entry for entry in index.members if entry.name.startswith(prefix)]
        chosen.update((entry.name, entry) for entry in below)
        if not below:
            missing.append(request)
    if missing:
        raise EngineError(f"no such member(s): {', '.join(missing)}")
    return list(chosen.values())


def extract_members(source: RangeSource, requests: Sequence[str], folder: Path) -> list[Path]:
    """Extract the requested members (or folders of members) into ``folder``, verified.

    ``folder`` is created if missing. Either every member is in place afterwards, or
    nothing the extract wrote or created is left.
    """
    index = read_index(source)
    entries = select_members(index, requests)
    members = frozenset(entry.name for entry in index.members)
    try:
        with Extraction(folder) as extraction:
            for entry in entries:
                extraction.write(source, entry, members)
            extraction.publish()
    except OSError as exc:
        what = f" ({exc.filename})" if exc.filename else ""
        raise EngineError(f"cannot extract into {folder}: {exc.strerror or exc}{what}") from None
    return [folder / entry.name for entry in entries]


@dataclass
class _Partial:
    folder_fd: int
    final: str  # the member's file name in its folder
    member: str
    fd: int
    name: str  # the partial file's name in the same folder
    replaces: bool = False  # whether a file of the final name existed
    renamed: bool = False


PARTIAL_SUFFIX = ".ccat-partial"
PARTIAL_ATTEMPTS = 8


def partial_name(base: str) -> str:
    """A fresh hidden name beside ``base`` (random: a name nobody else uses)."""
    return f".{base[:200]}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"


class Extraction:
    """The folders and partial files of one extract; undone unless it is published."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self._created_above: list[Path] = []
        self._made: list[tuple[int, str]] = []  # (parent folder fd, name) of folders made
        self._partials: list[_Partial] = []
        self._folders = {"": self._open_target(folder)}

    def __enter__(self) -> Extraction:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is not None:
            self._undo()
        self._close()

    def _open_target(self, folder: Path) -> int:
        """The target folder (created if missing; it may be a link: the caller chose it)."""
        try:
            self._create_missing(folder)
            return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            self._undo()
            raise EngineError(f"{folder}: cannot extract into it: {exc.strerror}") from None

    def _create_missing(self, folder: Path) -> None:
        missing = []
        while not os.path.lexists(folder):
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            os.mkdir(path)
            self._created_above.append(path)

    def folder_fd(self, folder: str) -> int:
        """The descriptor of ``folder`` below the target, walked to without following links."""
        key, fd = "", self._folders[""]
        for part in folder.split("/") if folder else ():
            key = f"{key}/{part}" if key else part
            if key not in self._folders:
                self._folders[key] = self._child(fd, part, key)
            fd = self._folders[key]
        return fd

    def _child(self, parent: int, name: str, key: str) -> int:
        with contextlib.suppress(FileNotFoundError):
            return self._open_folder(parent, name, key)
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent)
            self._made.append((parent, name))
        return self._open_folder(parent, name, key)

    def _open_folder(self, parent: int, name: str, key: str) -> int:
        try:
            return os.open(name, _FOLDER_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise EngineError(
                f"{self.path / key}: not a folder (a symbolic link or a file): "
                "refusing to extract through it"
            ) from None

    def write(self, source: RangeSource, entry: IndexEntry, members: frozenset[str]) -> None:
        """Write one member to a partial file of its own, verified and fsynced."""
        folder, _, base = entry.name.rpartition("/")
        folder_fd = self.folder_fd(folder)
        fd, name = self._create_partial(folder_fd, folder, base, members)
        self._partials.append(_Partial(folder_fd, base, entry.name, fd, name))
        copy_member(source, entry, fd)
        os.fsync(fd)

    def _create_partial(
        self, folder_fd: int, folder: str, base: str, members: frozenset[str]
    ) -> tuple[int, str]:
        """A new partial file (exclusive, never through a link), named like no member."""
        for _attempt in range(PARTIAL_ATTEMPTS):
            name = partial_name(base)
            if (f"{folder}/{name}" if folder else name) in members:
                continue
            with contextlib.suppress(FileExistsError):
                return os.open(name, _PARTIAL_FLAGS, 0o644, dir_fd=folder_fd), name
        raise EngineError(f"{self.path / folder / base}: no free name for its partial file")

    def publish(self) -> None:
        """Rename every partial file into place (after checking no folder is in the way)."""
        for partial in self._partials:
            partial.replaces = self._check_final_name(partial)
        for partial in self._partials:
            folder_fd = partial.folder_fd
            os.rename(partial.name, partial.final, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
            partial.renamed = True
        for fd in set(self._folders.values()):
            os.fsync(fd)

    def _check_final_name(self, partial: _Partial) -> bool:
        try:
            info = os.stat(partial.final, dir_fd=partial.folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(info.st_mode):
            raise EngineError(f"{self.path / partial.member}: a folder of that name is in the way")
        return True

    def _undo(self) -> None:
        for partial in self._partials:
            with contextlib.suppress(OSError):
                if not partial.renamed:
                    os.unlink(partial.name, dir_fd=partial.folder_fd)
                elif not partial.replaces:
                    os.unlink(partial.final, dir_fd=partial.folder_fd)
        for parent, name in reversed(self._made):
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent)
        self._made.clear()
        for path in reversed(self._created_above):
            with contextlib.suppress(OSError):
                path.rmdir()

    def _close(self) -> None:
        for fd in [p.fd for p in self._partials] + list(self._folders.values()):
            with contextlib.suppress(OSError):
                os.close(fd)


def copy_member(
    source: RangeSource, entry: IndexEntry, fd: int, chunk_size: int = DEFAULT_READ_SIZE
) -> None:
    """Copy a member's bytes by range reads to ``fd``, checking its xxh3-128."""
    hasher = xxhash.xxh3_128()
    buffer = memoryview(bytearray(min(chunk_size, entry.size)))
    for offset in range(0, entry.size, chunk_size):
        view = buffer[: min(chunk_size, entry.size - offset)]
        source.read_into(entry.offset + offset, view)
        hasher.update(view)
        write_at(fd, view, offset)
    if hasher.hexdigest() != entry.xxh3_128:
        raise PackageCorrupt(f"member {entry.name!r} does not match its recorded xxh3-128")
