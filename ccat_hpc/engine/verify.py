"""Verifying a package: every byte accounted for, in one sequential pass.

The index (checked when it is read, :func:`~ccat_hpc.engine.reader.read_index`) fixes
the layout of the whole package: for each member a header region, its data and its
padding; then the index member's header, the index, its padding, the two end blocks,
and nothing after them. The verifier walks these regions as the bytes stream past:

- a member's header region (at most 8 KiB, collected) is read strictly
  (:mod:`ccat_hpc.engine.tarcheck`): a regular file whose name and size are the index
  entry's, its data starting where the index says, byte for byte what the builder
  writes;
- member data is hashed and compared with the index;
- padding and the end blocks must be zeros;
- the index member must be the index that was read;

and the whole package is hashed for its xxh3-128. The serial verify feeds it from one
reader; the MPI verify (:mod:`ccat_hpc.engine.mpi`) feeds it on rank 0 with the ranges
the ranks read.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import xxhash

from ccat_hpc.engine.errors import PackageCorrupt, not_a_package
from ccat_hpc.engine.index import PackageIndex
from ccat_hpc.engine.reader import DEFAULT_READ_SIZE, RangeSource, read_index
from ccat_hpc.engine.tarcheck import (
    check_canonical,
    check_index_header,
    read_header_region,
    written_for,
)
from ccat_hpc.engine.tarformat import BLOCK, padded


class Kind(enum.Enum):
    HEADER = "header"
    DATA = "data"
    PADDING = "padding"
    INDEX_HEADER = "index header"
    INDEX_DATA = "index"
    END = "end-of-archive blocks"


class Region(NamedTuple):  # a tuple: one is made for every three or so KiB of small files
    start: int
    end: int
    kind: Kind
    member: int = -1  # the index entry it belongs to; -1: the index member


def regions(index: PackageIndex) -> Iterator[Region]:
    """Every region of the package the index describes, in order, covering all its bytes."""
    position = 0
    for number, entry in enumerate(index.members):
        data_end = entry.offset + entry.size
        yield Region(position, entry.offset, Kind.HEADER, number)
        yield Region(entry.offset, data_end, Kind.DATA, number)
        position = entry.offset + padded(entry.size)
        yield Region(data_end, position, Kind.PADDING, number)
    data = position + BLOCK
    yield Region(position, data, Kind.INDEX_HEADER)
    yield Region(data, data + index.size, Kind.INDEX_DATA)
    yield Region(data + index.size, data + padded(index.size), Kind.PADDING)
    yield Region(data + padded(index.size), index.package_size, Kind.END)


@dataclass(frozen=True)
class VerifyReport:
    size: int
    xxh3_128: str
    members: int


class PackageVerifier:
    """Consumes a package's bytes in order; checks its structure as they pass, and every
    member and the whole at the end (:meth:`report`)."""

    def __init__(self, index: PackageIndex, total: int) -> None:
        if total != index.package_size:
            raise not_a_package(
                f"it is {total} bytes long, but its index describes {index.package_size}"
            )
        self.index = index
        self.total = total
        self.position = 0
        self.package = xxhash.xxh3_128()
        self._regions = regions(index)
        self._region: Region | None = None
        self._hasher = xxhash.xxh3_128()
        self._header = bytearray()
        self._bad: list[str] = []
        self._advance()

    def consume(self, data: bytes | memoryview) -> None:
        self.package.update(data)
        view = memoryview(data)
        done = 0
        while done < len(view):
            region = self._region
            if region is None:
                raise not_a_package(f"it has bytes after its end-of-archive blocks ({self.total})")
            take = min(region.end - self.position, len(view) - done)
            self._feed(region, view[done : done + take])
            done += take
            self.position += take
            if self.position == region.end:
                self._finish(region)
                self._advance()

    def _advance(self) -> None:
        """On to the next region (finishing empty ones: the data of an empty member)."""
        self._region = next(self._regions, None)
        while self._region is not None and self._region.start == self._region.end:
            self._finish(self._region)
            self._region = next(self._regions, None)

    def _feed(self, region: Region, piece: memoryview) -> None:
        kind = region.kind
        if kind is Kind.DATA or kind is Kind.INDEX_DATA:
            self._hasher.update(piece)
        elif kind is Kind.HEADER or kind is Kind.INDEX_HEADER:
            self._header += piece
        elif bytes(piece).strip(b"\0"):
            raise not_a_package(f"{self._what(region)} is not zeros (at byte {region.start})")

    def _finish(self, region: Region) -> None:
        kind = region.kind
        if kind is Kind.HEADER:
            self._check_member_header(region)
        elif kind is Kind.DATA:
            entry = self.index.members[region.member]
            if self._hasher.hexdigest() != entry.xxh3_128:
                self._bad.append(entry.name)
        elif kind is Kind.INDEX_HEADER:
            where = f"the index member (header at byte {region.start})"
            check_index_header(bytes(self._header), self.index.size, where)
        elif kind is Kind.INDEX_DATA and self._hasher.hexdigest() != self.index.xxh3_128:
            raise PackageCorrupt("its index changed while it was being verified")
        self._header.clear()
        self._hasher.reset()

    def _check_member_header(self, region: Region) -> None:
        entry = self.index.members[region.member]
        header = bytes(self._header)
        if written_for(header, entry.name, entry.size):
            return
        where = f"member {entry.name!r} (header at byte {region.start})"
        found = read_header_region(header, where)
        if found.name != entry.name:
            raise not_a_package(f"{where}: its tar header names {found.name[:200]!r}")
        if found.size != entry.size:
            raise not_a_package(f"{where}: its tar header gives a size of {found.size} bytes")
        check_canonical(header, found, where)

    def _what(self, region: Region) -> str:
        if region.kind is Kind.END:
            return "the end of the archive"
        if region.member < 0:
            return "the padding after the index"
        return f"the padding after member {self.index.members[region.member].name!r}"

    def report(self, expected: str | None) -> VerifyReport:
        """The result once every byte was consumed; PackageCorrupt on any mismatch."""
        if self._region is not None or self.position != self.total:
            raise PackageCorrupt(f"read {self.position} of {self.total} bytes")
        if self._bad:
            more = f" (and {len(self._bad) - 3} more)" if len(self._bad) > 3 else ""
            names = ", ".join(self._bad[:3])
            raise PackageCorrupt(f"members do not match the index: {names}{more}")
        digest = str(self.package.hexdigest())
        if expected is not None and expected.lower() != digest:
            raise PackageCorrupt(f"package xxh3-128 is {digest}, expected {expected.lower()}")
        return VerifyReport(self.total, digest, len(self.index.members))


def verify_package(
    source: RangeSource,
    expected: str | None = None,
    chunk_size: int = DEFAULT_READ_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check the whole package, its structure and every member; PackageCorrupt if not."""
    total = source.size()
    verifier = PackageVerifier(read_index(source), total)
    buffer = memoryview(bytearray(chunk_size))
    for offset in range(0, total, chunk_size):
        view = buffer[: min(chunk_size, total - offset)]
        source.read_into(offset, view)
        verifier.consume(view)
        if progress is not None:
            progress(verifier.position, total)
    return verifier.report(expected)
