"""The member region of a package cut into fixed-size chunks of output (pure).

Chunk k covers output bytes [k·size, (k+1)·size) of everything before the index
and lists the pieces that fill it: literal bytes (headers, padding) or a byte range
of one member's source. A large file spans many chunks; many small files share one.
Ranks take chunks in turn (see :func:`ccat_hpc.engine.mpi.item_owner`), so every rank
moves about the same number of bytes and the chunks reach the in-order hasher in step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ccat_hpc.engine.layout import PackageLayout
from ccat_hpc.engine.tarformat import padded

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True)
class Piece:
    out_offset: int
    length: int
    member: int = -1  # index into layout.members; -1: literal bytes
    source_offset: int = 0
    literal: bytes = b""


@dataclass(frozen=True)
class Chunk:
    number: int
    start: int
    end: int
    pieces: tuple[Piece, ...]


def _segments(layout: PackageLayout) -> Iterator[Piece]:
    """The member region as whole pieces, in output order."""
    for number, member in enumerate(layout.members):
        yield Piece(member.header_offset, len(member.header), literal=member.header)
        # an empty member still gets its (empty) data piece: its source is opened and checked
        yield Piece(member.data_offset, member.size, member=number)
        padding = padded(member.size) - member.size
        if padding:
            yield Piece(member.data_offset + member.size, padding, literal=b"\0" * padding)


def _cut(piece: Piece, skip: int, length: int) -> Piece:
    if piece.member >= 0:
        return Piece(piece.out_offset + skip, length, piece.member, piece.source_offset + skip)
    return Piece(piece.out_offset + skip, length, literal=piece.literal[skip : skip + length])


def iter_chunks(layout: PackageLayout, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[Chunk]:
    """Every chunk of the member region, in order (lazily: 100,000 members stay cheap)."""
    if chunk_size <= 0 or chunk_size % 512:
        raise ValueError("chunk size must be a positive multiple of 512")
    number, start, pieces = 0, 0, []
    for piece in _segments(layout):
        if piece.length == 0:
            pieces.append(piece)
            continue
        done = 0
        while done < piece.length:
            room = start + chunk_size - (piece.out_offset + done)
            take = min(room, piece.length - done)
            pieces.append(_cut(piece, done, take) if take != piece.length else piece)
            done += take
            if piece.out_offset + done == start + chunk_size:
                yield Chunk(number, start, start + chunk_size, tuple(pieces))
                number, start, pieces = number + 1, start + chunk_size, []
    if pieces:
        yield Chunk(number, start, layout.members_end, tuple(pieces))


def chunk_count(layout: PackageLayout, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    return -(-layout.members_end // chunk_size)
