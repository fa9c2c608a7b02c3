"""Cutting one streamed read of a package's span into its members (stage task)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccat_hpc.pipeline.stage_task import _Span
from ccat_hpc.storage.base import StorageError


def pieces_of(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 700), st.integers(0, 2000)), min_size=1, max_size=8),
    st.lists(st.integers(0, 10**6), max_size=12),
    st.integers(0, 5000),
)
def test_members_come_out_whole_whatever_the_piece_sizes(
    layout: list[tuple[int, int]], cuts: list[int], start: int
) -> None:
    """Members (gap before each, size) laid out from ``start``; the stream cut anywhere."""
    members: list[tuple[int, bytes]] = []
    offset = start
    for number, (gap, size) in enumerate(layout):
        offset += gap
        members.append((offset, bytes([number % 251 + 1]) * size))
        offset += size
    span = bytearray(offset - start)
    for at, data in members:
        span[at - start : at - start + len(data)] = data
    cursor = _Span(iter(pieces_of(bytes(span), cuts)), start)
    for at, data in members:
        cursor.skip_to(at)
        assert b"".join(bytes(p) for p in cursor.take(len(data))) == data
    assert cursor.position == offset


def test_a_stream_that_ends_early_is_a_storage_error_a_retry_can_help() -> None:
    cursor = _Span(iter([b"abc"]), 100)
    with pytest.raises(StorageError) as ended:
        b"".join(cursor.take(5))
    assert ended.value.transient
