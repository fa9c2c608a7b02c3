"""The in-order hasher: the package's xxh3-128 and every member's, in one pass.

xxh3 cannot be combined from pieces hashed apart, so one hasher sees every byte in
output order. In a parallel build the ranks send it their chunks (see
:mod:`ccat_hpc.engine.mpi`); xxh3 runs at several GB/s, well above what the disks
write, so one hasher keeps up and the package is never read back from disk.
"""

from __future__ import annotations

from collections.abc import Sequence

import xxhash

from ccat_hpc.engine.chunks import Chunk
from ccat_hpc.engine.errors import ChecksumMismatch
from ccat_hpc.engine.layout import MemberSpec, PackageLayout

EMPTY_XXH3_128 = str(xxhash.xxh3_128_hexdigest(b""))


class StreamHasher:
    def __init__(self, layout: PackageLayout, specs: Sequence[MemberSpec]) -> None:
        self.layout = layout
        self.specs = specs
        self.package = xxhash.xxh3_128()
        self.member_hashes: list[str | None] = [None] * len(specs)
        self._current: tuple[int, xxhash.xxh3_128] | None = None
        self.position = 0

    def consume(self, chunk: Chunk, data: bytes | memoryview) -> None:
        """Hash the next chunk; chunks must come in order."""
        if chunk.start != self.position:
            raise RuntimeError(f"chunk at {chunk.start} hashed out of order (at {self.position})")
        self.package.update(data)
        view = memoryview(data)
        for piece in chunk.pieces:
            if piece.member >= 0:
                start = piece.out_offset - chunk.start
                self._member_bytes(piece.member, view[start : start + piece.length])
                if piece.source_offset + piece.length == self.specs[piece.member].size:
                    self._finish_member(piece.member)
        self.position = chunk.end

    def _member_bytes(self, member: int, data: memoryview) -> None:
        if self._current is None or self._current[0] != member:
            self._current = (member, xxhash.xxh3_128())
        self._current[1].update(data)

    def _finish_member(self, member: int) -> None:
        assert self._current is not None and self._current[0] == member
        self._set(member, str(self._current[1].hexdigest()))
        self._current = None

    def _set(self, member: int, digest: str) -> None:
        expected = self.specs[member].expected_xxh3_128
        if expected is not None and expected.lower() != digest:
            spec = self.specs[member]
            raise ChecksumMismatch(
                f"{spec.source or spec.name}: xxh3-128 is {digest}, expected {expected.lower()}"
            )
        self.member_hashes[member] = digest

    def finish_members(self) -> list[str]:
        """Member hashes (empty members get the hash of no bytes); call after the last chunk."""
        for member, digest in enumerate(self.member_hashes):
            if digest is None:
                if self.specs[member].size:
                    raise RuntimeError(f"member {member} was not hashed completely")
                self._set(member, EMPTY_XXH3_128)
        return [d for d in self.member_hashes if d is not None]

    def consume_tail(self, tail: bytes) -> str:
        """Hash the index and end blocks; returns the package's xxh3-128."""
        self.package.update(tail)
        self.position += len(tail)
        return str(self.package.hexdigest())
