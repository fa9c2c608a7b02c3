"""Pure parts of the packaging engine: headers, layout, chunk plan, index."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccat_hpc.engine.chunks import iter_chunks
from ccat_hpc.engine.errors import InvalidPackage, UnsafeMemberName
from ccat_hpc.engine.index import (
    INDEX_NAME,
    IndexEntry,
    check_member_name,
    index_template,
    parse_index,
)
from ccat_hpc.engine.layout import MemberSpec, compute_layout
from ccat_hpc.engine.tarformat import (
    USTAR_MAX_SIZE,
    member_headers,
    padded,
    pax_record,
    split_name,
)

name_part = st.text(alphabet="abcXYZ019_-.äöü€", min_size=1, max_size=40).filter(
    lambda p: p not in (".", "..")
)
names = st.lists(name_part, min_size=1, max_size=8).map("/".join)


def _no_member_is_a_folder(members: list[MemberSpec]) -> bool:
    names = {m.name for m in members}
    return not any(name.startswith(other + "/") for name in names for other in names)


specs = st.lists(
    st.builds(
        MemberSpec,
        name=names,
        size=st.integers(0, 3000),
        mtime_ns=st.integers(0, 2_000_000_000 * 10**9),
        mode=st.sampled_from([0o644, 0o600, 0o755]),
    ),
    max_size=12,
    unique_by=lambda s: s.name,
).filter(_no_member_is_a_folder)


@given(st.text(min_size=1, max_size=30).filter(lambda k: "=" not in k), st.text(max_size=400))
def test_pax_record_length_counts_itself(key: str, value: str) -> None:
    record = pax_record(key, value)
    length, _ = record.split(b" ", 1)
    assert int(length) == len(record) and record.endswith(b"\n")


def test_split_name() -> None:
    assert split_name("a/b.g3") == ("", "a/b.g3")
    long = "d" * 120 + "/" + "f" * 90
    assert split_name(long) == ("d" * 120, "f" * 90)
    assert split_name("x" * 101) is None
    assert split_name("ü.g3") is None


def _synthetic_package(members: list[MemberSpec]) -> tuple[bytes, object]:
    layout = compute_layout(members)
    out = bytearray(layout.total_size)
    for spec, member in zip(members, layout.members, strict=True):
        out[member.header_offset : member.data_offset] = member.header
        out[member.data_offset : member.data_offset + spec.size] = bytes([7]) * spec.size
    index = layout.index_template.fill(["ab" * 16] * len(members))
    out[layout.members_end :] = layout.tail(index)
    return bytes(out), layout


@settings(max_examples=60, deadline=None)
@given(specs)
def test_layout_is_what_tar_readers_see(members: list[MemberSpec]) -> None:
    data, layout = _synthetic_package(members)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        seen = archive.getmembers()
    assert [m.name for m in seen] == [s.name for s in members] + [INDEX_NAME]
    for spec, member, info in zip(members, layout.members, seen, strict=False):  # type: ignore[attr-defined]
        assert info.size == spec.size
        assert info.offset_data == member.data_offset
        assert info.mtime == pytest.approx(spec.mtime_ns / 1e9, abs=1e-6)
        assert info.mode == spec.mode
    assert layout.total_size % 512 == 0  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(specs, st.sampled_from([512, 1024, 4096]))
def test_chunks_cover_the_member_region_exactly(members: list[MemberSpec], size: int) -> None:
    layout = compute_layout(members)
    position = 0
    per_member = [0] * len(members)
    for chunk in iter_chunks(layout, size):
        assert chunk.start == position and chunk.end - chunk.start <= size
        for piece in chunk.pieces:
            assert piece.out_offset == position
            position += piece.length
            if piece.member >= 0:
                assert piece.source_offset == per_member[piece.member]
                per_member[piece.member] += piece.length
            else:
                assert len(piece.literal) == piece.length
        assert position == chunk.end
    assert position == layout.members_end
    assert per_member == [s.size for s in members]


def test_large_member_gets_a_pax_size() -> None:
    headers = member_headers("big.bin", USTAR_MAX_SIZE + 1, 0)
    assert b" size=8589934592\n" in headers
    info = tarfile.TarInfo.frombuf(headers[-512:], "utf-8", "surrogateescape")
    assert info.size == 0  # the real size is in the PAX record
    assert padded(1) == 512 and padded(512) == 512 and padded(0) == 0


@pytest.mark.parametrize(
    "name", ["", "/abs", "a/../b", "./a", "a//b", "a/", "..", "a\\b", "a\x00", INDEX_NAME]
)
def test_unsafe_member_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeMemberName):
        check_member_name(name)


def test_duplicate_members_are_refused() -> None:
    with pytest.raises(UnsafeMemberName, match="appears twice"):
        compute_layout([MemberSpec("a", 1), MemberSpec("a", 2)])


@pytest.mark.parametrize("order", [["a", "a/b"], ["a/b/c", "a/b"]])
def test_a_member_cannot_also_be_a_folder(order: list[str]) -> None:
    with pytest.raises(UnsafeMemberName, match="is also the folder of"):
        compute_layout([MemberSpec(name, 1) for name in order])


def test_index_template_fill_and_parse() -> None:
    template = index_template([("a.g3", 10, 512), ("ü/b", 0, 1536)])
    data = template.fill(["0f" * 16, "e1" * 16])
    assert len(data) == len(template.data)
    index = parse_index(data, header_offset=1536)
    assert index.members[1] == IndexEntry("ü/b", 1536, 0, "e1" * 16)
    assert index.size == len(data) and index.package_size == 1536 + 512 + 512 + 1024
    with pytest.raises(ValueError, match="32 hex"):
        template.fill(["ab", "cd"])
    with pytest.raises(InvalidPackage, match="not a ccat package index"):
        parse_index(b'{"format": "other"}', 0)
