"""Reading packages: byte-range sources, and finding the index with a bounded search.

Everything reads through a :class:`RangeSource` (a local file here; an S3 object with
ranged GETs later), so extracting one member of a 50 GB package reads the tail (for
the index) and that member's bytes, nothing else.

Where the index is. A package ends with its index member: a ustar header, the index
(JSON text, which holds no NUL byte) padded with NULs to whole blocks, and two zero
blocks. So, from the end: 1,024 zero bytes; fewer than 512 NULs of padding; then the
index text, back to the last NUL byte, which is the last byte of the index header.
The search reads backwards in growing windows and gives up after
:data:`~ccat_hpc.engine.index.MAX_INDEX_SIZE` bytes of text, so memory and reads stay
bounded whatever the file; a plain tar or a file of zeros fails within its first reads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from ccat_hpc.engine.errors import EngineError, PackageCorrupt, not_a_package
from ccat_hpc.engine.index import MAX_INDEX_SIZE, PackageIndex, parse_index
from ccat_hpc.engine.positional import read_at
from ccat_hpc.engine.tarcheck import check_index_header
from ccat_hpc.engine.tarformat import BLOCK

#: Reads of this size stay in the CPU cache until both hashes have seen them; with
#: 8 MiB reads every byte went through memory twice more (verify was 2.5x slower here).
DEFAULT_READ_SIZE = 256 * 1024
#: The index search reads windows from the end, this large at first, growing 4x a step.
TAIL_WINDOW = 64 * 1024
MAX_TAIL_WINDOW = 8 * 1024 * 1024
END_BLOCKS = 2 * BLOCK


class RangeSource(Protocol):
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def read_into(self, offset: int, view: memoryview) -> None:
        """Fill ``view`` with the bytes at ``offset`` (no allocation per read)."""

    def close(self) -> None: ...


class LocalFile:
    """A package on a POSIX file system."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait
        except OSError as exc:
            raise EngineError(f"{path}: cannot open: {exc.strerror}") from None

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        buffer = bytearray(length)
        self.read_into(offset, memoryview(buffer))
        return bytes(buffer)

    def read_into(self, offset: int, view: memoryview) -> None:
        try:
            done = read_at(self._fd, view, offset)
        except OSError as exc:
            raise EngineError(f"{self.path}: cannot read: {exc.strerror}") from None
        if done < len(view):
            raise PackageCorrupt(f"{self.path}: truncated (wanted {len(view)} bytes at {offset})")

    def close(self) -> None:
        os.close(self._fd)


def read_index(source: RangeSource, limit: int = MAX_INDEX_SIZE) -> PackageIndex:
    """The package's index, checked; InvalidPackage when the source is no ccat package.

    Reads the end blocks, then backwards through at most ``limit`` bytes of index text.
    """
    end = _end_of_members_and_index(source)
    data_end = _index_text_end(source, end)
    data_start = _index_text_start(source, data_end, limit)
    if data_start % BLOCK or data_start < BLOCK:
        raise not_a_package("the bytes before its end-of-archive blocks are not an index member")
    header_offset = data_start - BLOCK
    where = f"the index member (header at byte {header_offset})"
    check_index_header(source.read(header_offset, BLOCK), data_end - data_start, where)
    return parse_index(source.read(data_start, data_end - data_start), header_offset)


def _end_of_members_and_index(source: RangeSource) -> int:
    """Where the two end-of-archive blocks start (checking they are there and last)."""
    total = source.size()
    if total % BLOCK:
        raise not_a_package(f"its size ({total} bytes) is not a whole number of tar blocks")
    if total < 4 * BLOCK:
        raise not_a_package(f"it is too small ({total} bytes) to hold an index member")
    if source.read(total - END_BLOCKS, END_BLOCKS).strip(b"\0"):
        raise not_a_package("it does not end with the two zero blocks that end a tar archive")
    return total - END_BLOCKS


def _index_text_end(source: RangeSource, end: int) -> int:
    """Where the index text ends: the last block before ``end`` without its NUL padding."""
    text = source.read(end - BLOCK, BLOCK).rstrip(b"\0")
    if not text:
        raise not_a_package("no index member before its end-of-archive blocks")
    return end - BLOCK + len(text)


def _index_text_start(source: RangeSource, text_end: int, limit: int) -> int:
    """Just after the last NUL byte before ``text_end``, looking back at most ``limit`` bytes."""
    lowest = max(0, text_end - limit - 1)
    cursor, window = text_end, TAIL_WINDOW
    while cursor > lowest:
        start = max(lowest, cursor - window)
        found = source.read(start, cursor - start).rfind(b"\0")
        if found >= 0:
            return start + found + 1
        cursor, window = start, min(window * 4, MAX_TAIL_WINDOW)
    raise not_a_package(
        f"no index member: the {text_end - lowest} bytes before its end-of-archive blocks "
        "hold no tar header"
    )
