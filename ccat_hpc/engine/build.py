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
import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccat_hpc.engine.chunks import DEFAULT_CHUNK_SIZE, Chunk, iter_chunks
from ccat_hpc.engine.errors import EngineError, SourceChanged
from ccat_hpc.engine.hashing import StreamHasher
from ccat_hpc.engine.index import parse_index
from ccat_hpc.engine.layout import MemberSpec, PackageLayout, compute_layout

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True)
class BuildResult:
    path: Path
    size: int
    xxh3_128: str
    index: dict[str, Any] = field(repr=False)


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
            fd = os.open(spec.source, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise SourceChanged(f"{spec.source}: cannot open: {exc.strerror}") from None
        self._open = (member, fd)
        self._check_unchanged(member, fd)
        return fd

    def _check_unchanged(self, member: int, fd: int) -> None:
        spec = self.specs[member]
        info = os.fstat(fd)
        if info.st_size != spec.size or (spec.mtime_ns and info.st_mtime_ns != spec.mtime_ns):
            raise SourceChanged(
                f"{spec.source}: changed since it was listed (size {info.st_size}, "
                f"expected {spec.size})"
            )

    def read_into(self, member: int, offset: int, view: memoryview) -> None:
        fd = self._fd(member)
        done = 0
        while done < len(view):
            count = os.preadv(fd, [view[done:]], offset + done)
            if count == 0:
                raise SourceChanged(f"{self.specs[member].source}: shrank while being packaged")
            done += count
        if offset + len(view) == self.specs[member].size:
            self._check_unchanged(member, fd)

    def close(self) -> None:
        if self._open is not None:
            os.close(self._open[1])
            self._open = None


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


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def write_chunk(fd: int, buffer: bytearray, length: int, offset: int, zeros: bytes) -> None:
    """Write ``buffer[:length]``, unless it is all zeros: the preallocated file reads as zeros.

    (bytearray == bytes is a memcmp; comparing memoryviews is ~60x slower.)
    """
    whole = length == len(buffer)
    if (buffer != zeros) if whole else (buffer[:length] != zeros[:length]):
        write_at(fd, memoryview(buffer)[:length], offset)


def create_partial(output: Path, size: int) -> int:
    """Open a fresh, preallocated partial file (a stale one is replaced)."""
    partial = partial_path(output)
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            os.close(fd)
            partial.unlink(missing_ok=True)
            raise EngineError(f"{output}: cannot reserve {size} bytes: {exc.strerror}") from None
        os.ftruncate(fd, size)
    return fd


def publish(fd: int, output: Path) -> None:
    """fsync, close and rename the partial file into place, then fsync the folder."""
    os.fsync(fd)
    os.close(fd)
    os.rename(partial_path(output), output)
    directory = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def finish(fd: int, layout: PackageLayout, hasher: StreamHasher) -> tuple[str, dict[str, Any]]:
    """Write the index and end blocks; returns (package hash, index)."""
    index_data = layout.index_template.fill(hasher.finish_members())
    tail = layout.tail(index_data)
    write_at(fd, tail, layout.members_end)
    return hasher.consume_tail(tail), parse_index(index_data)


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
            hasher.consume(chunk, data)
            if progress is not None:
                progress(chunk.end, layout.total_size)
        checksum, index = finish(fd, layout, hasher)
        publish(fd, output)
    except BaseException as exc:
        _abandon(fd, output)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise EngineError(f"{output}: disk full") from None
        raise
    finally:
        reader.close()
    return BuildResult(output, layout.total_size, checksum, index)


def _abandon(fd: int, output: Path) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    partial_path(output).unlink(missing_ok=True)
