"""Where every byte of a package goes, computed before a byte is read (pure functions).

A package is: for each member, its header blocks then its data padded to 512 bytes;
then the index member (see :mod:`ccat_hpc.engine.index`); then two zero blocks. The
layout depends only on the member list (names, sizes, mtimes, modes), so every rank
of a parallel build computes the same one, and any number of ranks writes the same
bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ccat_hpc.engine.errors import EngineError
from ccat_hpc.engine.index import (
    INDEX_NAME,
    MAX_INDEX_SIZE,
    IndexTemplate,
    check_member_names,
    index_template,
)
from ccat_hpc.engine.tarformat import BLOCK, end_of_archive, member_headers, padded


@dataclass(frozen=True)
class MemberSpec:
    """One file to package: its name inside the tar and what the layout needs of it."""

    name: str
    size: int
    mtime_ns: int = 0
    mode: int = 0o644
    source: str = ""
    expected_xxh3_128: str | None = None


@dataclass(frozen=True)
class MemberLayout:
    name: str
    size: int
    header_offset: int
    data_offset: int
    header: bytes

    @property
    def end(self) -> int:
        """Offset just past the member's padded data."""
        return self.data_offset + padded(self.size)


@dataclass(frozen=True)
class PackageLayout:
    members: tuple[MemberLayout, ...]
    index: MemberLayout
    index_template: IndexTemplate
    total_size: int

    @property
    def members_end(self) -> int:
        """Where the index member's header starts: everything before is member bytes."""
        return self.index.header_offset

    def tail(self, index_data: bytes) -> bytes:
        """The bytes from ``members_end`` to the end: index header, index data, end blocks."""
        body = index_data.ljust(padded(len(index_data)), b"\0")
        return self.index.header + body + end_of_archive()


def _check_specs(specs: Sequence[MemberSpec]) -> None:
    check_member_names(spec.name for spec in specs)
    for spec in specs:
        if spec.size < 0:
            raise ValueError(f"member {spec.name!r} has a negative size")


def compute_layout(specs: Sequence[MemberSpec]) -> PackageLayout:
    """The byte layout of a package of ``specs``, in the given order.

    The index member gets the newest member mtime, in whole seconds (so it is a plain
    ustar header that readers find by name at the end of the package).
    """
    _check_specs(specs)
    index_mtime_ns = max((s.mtime_ns for s in specs), default=0) // 10**9 * 10**9
    members = []
    offset = 0
    for spec in specs:
        header = member_headers(spec.name, spec.size, spec.mtime_ns, spec.mode)
        layout = MemberLayout(spec.name, spec.size, offset, offset + len(header), header)
        members.append(layout)
        offset = layout.end
    template = index_template([(m.name, m.size, m.data_offset) for m in members])
    if len(template.data) > MAX_INDEX_SIZE:
        raise EngineError(
            f"{len(members)} members need an index of {len(template.data)} bytes, more than "
            f"a package may have ({MAX_INDEX_SIZE}): split them into several packages"
        )
    index_header = member_headers(INDEX_NAME, len(template.data), index_mtime_ns, 0o644)
    index = MemberLayout(
        INDEX_NAME, len(template.data), offset, offset + len(index_header), index_header
    )
    total = index.end + 2 * BLOCK
    return PackageLayout(tuple(members), index, template, total)
