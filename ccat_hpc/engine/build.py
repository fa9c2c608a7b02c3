"""Building one package: read sources once, write with positional writes, hash in order.

Crash safety: the package is written to ``.NAME.partial`` beside its final name,
preallocated (a full disk fails before any work), fsynced, and renamed into place
only when every member was read completely, unchanged, and matched its expected
checksum. Any failure removes the partial file; a stale one from a killed build is
replaced by the next build. Memory is one chunk buffer per rank, whatever the sizes.

The serial build here and the MPI build (:mod:`ccat_hpc.engine.mpi`) share the chunk
plan, the reader and the hasher; one rank is simply a build where rank 0 does it all.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ccat_hpc.engine.chunks import DEFAULT_CHUNK_SIZE, Chunk, iter_chunks
from ccat_hpc.engine.errors import EngineError, SourceChanged
from ccat_hpc.engine.hashing import StreamHasher
from ccat_hpc.engine.index import PackageIndex, parse_index
from ccat_hpc.engine.layout import MemberSpec, PackageLayout, compute_layout
from ccat_hpc.engine.positional import read_at, write_at

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True)
class BuildResult:
    path: Path
    size: int
    xxh3_128: str
    index: PackageIndex = field(repr=False)


def partial_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.partial")


class SourceReader:
    """Reads byte ranges of members' source files, checking they do not change."""

    def __init__(self, specs: Sequence[MemberSpec]) -> None:
        self.specs = specs
        self._open: tuple[int, int] | None = None  # (member, fd)

    def _fd(self, member: int) -> int:
        if self._open is not None and self._open[0] == member:
            return self._open[1]
        self.close()
        spec = self.specs[member]
        try:
            fd = _open_source(spec.source)
        except OSError as exc:
            if exc.errno in _GONE_OR_REPLACED:  # the file is not what was listed any more
                raise SourceChanged(f"{spec.source}: cannot open: {exc.strerror}") from None
            raise EngineError(f"{spec.source}: cannot open: {exc.strerror}") from None
        self._open = (member, fd)
        self._check_unchanged(member, fd)
        return fd

    def _check_unchanged(self, member: int, fd: int) -> None:
        spec = self.specs[member]
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceChanged(f"{spec.source}: is no longer a regular file")
        if info.st_size != spec.size or (spec.mtime_ns and info.st_mtime_ns != spec.mtime_ns):
            raise SourceChanged(
                f"{spec.source}: changed since it was listed (size {info.st_size}, "
                f"expected {spec.size})"
            )

    def read_into(self, member: int, offset: int, view: memoryview) -> None:
        fd = self._fd(member)
        if read_at(fd, view, offset) < len(view):
            raise SourceChanged(f"{self.specs[member].source}: shrank while being packaged")
        if offset + len(view) == self.specs[member].size:
            self._check_unchanged(member, fd)

    def close(self) -> None:
        if self._open is not None:
            os.close(self._open[1])
            self._open = None


#: opening a source fails with these when it was removed or replaced by a link or a
#: folder; anything else (EIO, ESTALE, EACCES) is a problem of the moment, not the file's
_GONE_OR_REPLACED = frozenset({errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EISDIR})


def _open_source(path: str) -> int:
    """Open a member's source for reading, never waiting on a FIFO put in its place.

    O_NONBLOCK makes opening a FIFO return at once (the caller then refuses it as no
    regular file); a regular file under a lease (an HSM or NFS server recalling it)
    answers EWOULDBLOCK instead, and is then opened waiting, as any reader would.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_NONBLOCK)
    except BlockingIOError:
        return os.open(path, flags)


def assemble(chunk: Chunk, reader: SourceReader, buffer: bytearray) -> memoryview:
    """The chunk's output bytes, in ``buffer``."""
    view = memoryview(buffer)[: chunk.end - chunk.start]
    for piece in chunk.pieces:
        target = view[
            piece.out_offset - chunk.start : piece.out_offset - chunk.start + piece.length
        ]
        if piece.member >= 0:
            reader.read_into(piece.member, piece.source_offset, target)
        else:
            target[:] = piece.literal
    return view


def write_chunk(fd: int, buffer: bytearray, length: int, offset: int, zeros: bytes) -> None:
    """Write ``buffer[:length]``, unless it is all zeros: the preallocated file reads as zeros.

    (bytearray == bytes is a memcmp; comparing memoryviews is ~60x slower.)
    """
    whole = length == len(buffer)
    if (buffer != zeros) if whole else (buffer[:length] != zeros[:length]):
        write_at(fd, memoryview(buffer)[:length], offset)


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing these bytes to disk now (Linux; a no-op elsewhere).

    Left alone, a build leaves gigabytes of dirty pages for the final fsync. Starting
    writeback chunk by chunk lets the disk work while the next chunks are read and
    hashed, and keeps dirty memory small. It does not wait, and it is no durability
    promise: the fsync before the rename is.
    """
    function = _sync_file_range()
    if function is not None:
        function(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def as_engine_error(exc: Exception, output: Path) -> EngineError:
    """An expected failure as an EngineError (OS errors of the output become one line)."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return EngineError(f"{output}: disk full")
        return EngineError(f"{output}: {exc.strerror or exc}")
    return EngineError(f"{output}: {type(exc).__name__}: {exc}")


def create_partial(output: Path, size: int) -> int:
    """Open a fresh, preallocated partial file, locked for the whole build.

    The lock (``flock``) makes a second build of the same package fail clearly instead
    of both writing one file; a partial that nobody holds (a killed build's) is
    replaced. The lock goes away with the process, however it ends.
    """
    partial = partial_path(output)
    fd = _create_locked(partial, output)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            abandon(fd, output)
            raise EngineError(f"{output}: cannot reserve {size} bytes: {exc.strerror}") from None
        os.ftruncate(fd, size)
    return fd


def _busy(output: Path) -> EngineError:
    return EngineError(f"{output}: another build of it is running (its partial file is locked)")


def _create_locked(partial: Path, output: Path) -> int:
    for _attempt in range(2):
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            _remove_stale(partial, output)
            continue
        except FileNotFoundError:
            raise EngineError(f"{output}: its folder {output.parent} does not exist") from None
        except OSError as exc:
            raise EngineError(f"{output}: cannot create it: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(output) from None
        return fd
    raise _busy(output)


def _remove_stale(partial: Path, output: Path) -> None:
    try:
        fd = os.open(partial, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:  # a symbolic link, or something else that is no build's
        raise EngineError(f"{output}: {partial.name} is in the way: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(output) from None
        if _same_file(fd, partial):
            partial.unlink()
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def publish(fd: int, output: Path) -> None:
    """fsync and rename the partial file into place (still locked), then fsync the folder."""
    os.fsync(fd)
    partial = partial_path(output)
    if not _same_file(fd, partial):
        raise EngineError(f"{output}: its partial file was replaced by another build")
    os.rename(partial, output)
    os.close(fd)
    directory = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def finish(fd: int, layout: PackageLayout, hasher: StreamHasher) -> tuple[str, PackageIndex]:
    """Write the index and end blocks; returns (package hash, index)."""
    index_data = layout.index_template.fill(hasher.finish_members())
    tail = layout.tail(index_data)
    write_at(fd, tail, layout.members_end)
    return hasher.consume_tail(tail), parse_index(index_data, layout.members_end)


def build_package(
    specs: Sequence[MemberSpec],
    output: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
) -> BuildResult:
    """Build ``output`` from ``specs`` in this process (the one-rank build)."""
    layout = compute_layout(specs)
    fd = create_partial(output, layout.total_size)
    reader = SourceReader(specs)
    try:
        hasher = StreamHasher(layout, specs)
        buffer = bytearray(chunk_size)
        zeros = bytes(chunk_size)
        for chunk in iter_chunks(layout, chunk_size):
            data = assemble(chunk, reader, buffer)
            write_chunk(fd, buffer, len(data), chunk.start, zeros)
            start_writeback(fd, chunk.start, len(data))
            hasher.consume(chunk, data)
            if progress is not None:
                progress(chunk.end, layout.total_size)
        checksum, index = finish(fd, layout, hasher)
        publish(fd, output)
    except OSError as exc:
        abandon(fd, output)
        raise as_engine_error(exc, output) from None
    except BaseException:
        abandon(fd, output)
        raise
    finally:
        reader.close()
    return BuildResult(output, layout.total_size, checksum, index)


def abandon(fd: int, output: Path) -> None:
    """Remove this build's partial file (never another build's) and release it."""
    partial = partial_path(output)
    with contextlib.suppress(OSError):
        if _same_file(fd, partial):
            partial.unlink()
    with contextlib.suppress(OSError):
        os.close(fd)
