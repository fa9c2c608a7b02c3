"""Damaged and tampered packages: each fails verify, named, through the API and the CLI.

Every attack starts from a real package built by the engine and changes it the way a
damaged or hostile copy would; where the attack needs a valid-looking tar header, the
header checksum is fixed up (and Python's tarfile accepts it). The reader must find
the problem without knowing the package's checksum.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccat_hpc.engine.build import BuildResult, build_package
from ccat_hpc.engine.errors import EngineError, InvalidPackage, PackageCorrupt
from ccat_hpc.engine.index import INDEX_NAME, MAX_INDEX_SIZE, IndexEntry
from ccat_hpc.engine.reader import MAX_TAIL_WINDOW, LocalFile, RangeSource, read_index
from ccat_hpc.engine.sources import specs_from_folders
from ccat_hpc.engine.tarcheck import header_checksum
from ccat_hpc.engine.tarformat import BLOCK, member_headers, padded
from ccat_hpc.engine.verify import verify_package
from tests.integration.test_cli import InProcess, one_line_error

# --- a small real package, and ways to change it -----------------------------------


@dataclass(frozen=True)
class Built:
    path: Path
    result: BuildResult
    src: Path
    data: bytes  # as built (tests overwrite ``path`` with changed copies)

    def entry(self, name: str) -> IndexEntry:
        return next(m for m in self.result.index.members if m.name == name)

    def index_document(self) -> dict[str, Any]:
        index = self.result.index
        start = index.header_offset + BLOCK
        return json.loads(self.data[start : start + index.size])  # type: ignore[no-any-return]


SECOND = 10**9
MTIME_NS = 1_700_000_000 * SECOND


def build_small(root: Path) -> Built:
    """Five members: empty with a sub-second mtime, a long name and a UTF-8 name (each
    with a PAX header), and two plain ustar members (a.g3 at byte 6144, b.g3 at 7680)."""
    src = root / "src"
    (src / "obs").mkdir(parents=True)
    files = {
        "empty.g3": b"",
        "long-" + "n" * 120 + ".g3": b"pax path",
        "Überblick.g3": b"utf-8 name",
        "obs/a.g3": os.urandom(1000),
        "obs/b.g3": os.urandom(513),
    }
    for name, content in files.items():
        (src / name).write_bytes(content)
        os.utime(src / name, ns=(MTIME_NS, MTIME_NS))
    os.utime(src / "empty.g3", ns=(MTIME_NS, MTIME_NS + SECOND // 4))
    path = root / "pkg.tar"
    result = build_package(specs_from_folders([src]), path)
    return Built(path, result, src, path.read_bytes())


@pytest.fixture
def small(tmp_path: Path) -> Built:
    return build_small(tmp_path)


def with_checksum(block: bytes | bytearray) -> bytes:
    """A header block with its checksum field recomputed (as a writer would)."""
    fixed = bytearray(block)
    fixed[148:156] = f"{header_checksum(fixed):06o}".encode() + b"\0 "
    return bytes(fixed)


def tamper_header(data: bytes, offset: int, changes: dict[int, bytes], fix: bool = True) -> bytes:
    """``data`` with bytes of the header block at ``offset`` replaced (position: bytes)."""
    block = bytearray(data[offset : offset + BLOCK])
    for position, value in changes.items():
        block[position : position + len(value)] = value
    new = with_checksum(block) if fix else bytes(block)
    return data[:offset] + new + data[offset + BLOCK :]


def replace_index(data: bytes, header_offset: int, text: bytes) -> bytes:
    """``data`` with a new index member (header, ``text``, padding, end blocks)."""
    header = member_headers(INDEX_NAME, len(text), 1_700_000_000 * 10**9, 0o644)
    body = text.ljust(padded(len(text)), b"\0")
    return data[:header_offset] + header + body + bytes(2 * BLOCK)


class Raw(str):
    """JSON text put into a rendered index as it is (numbers or nesting json cannot write)."""


def render_index(document: dict[str, Any]) -> bytes:
    """An index document laid out as the builder lays one out, whatever its values."""
    raws: list[str] = []

    def dumps(value: object) -> str:
        return json.dumps(_mark(value, raws), ensure_ascii=False, separators=(",", ":"))

    top = {key: value for key, value in document.items() if key != "members"}
    text = dumps(top)[:-1]
    members = document.get("members")
    if isinstance(members, list):
        lines = ",\n".join(dumps(member) for member in members)
        text += ("," if top else "") + '"members":[\n' + lines + ("\n" if members else "")
        text += "]}\n"
    elif "members" in document:
        text += ("," if top else "") + '"members":' + dumps(members) + "}\n"
    else:
        text += "}\n"
    for number, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x01raw{number}\x01"), raw)
    return text.encode()


def _mark(value: object, raws: list[str]) -> object:
    """``value`` with every Raw replaced by a placeholder string (collected in ``raws``)."""
    if isinstance(value, Raw):
        raws.append(str(value))
        return f"\x01raw{len(raws) - 1}\x01"
    if isinstance(value, dict):
        return {key: _mark(item, raws) for key, item in value.items()}
    if isinstance(value, list):
        return [_mark(item, raws) for item in value]
    return value


def with_index(small: Built, change: Callable[[dict[str, Any]], object]) -> bytes:
    """The package with its index document changed by ``change`` (in place)."""
    document = small.index_document()
    change(document)
    return replace_index(small.data, small.result.index.header_offset, render_index(document))


def test_the_tampering_tools_change_nothing_by_themselves(small: Built) -> None:
    data, index = small.data, small.result.index
    assert [m.offset for m in index.members] == [1536, 3072, 5120, 6144, 7680]
    start = index.header_offset + BLOCK
    assert render_index(small.index_document()) == data[start : start + index.size]
    unchanged = with_index(small, lambda document: None)
    assert unchanged[: index.header_offset] == data[: index.header_offset]
    assert len(unchanged) == len(data) and read_index(LocalFile(write(small.path, unchanged)))
    plain = small.entry("src/obs/a.g3").offset - BLOCK
    assert tamper_header(data, plain, {}) == data


# --- running verify both ways -------------------------------------------------------


def verify_fails(path: Path, capsys: pytest.CaptureFixture[str], problem: str) -> str:
    """Verify ``path`` through the API and the CLI; both must fail naming ``problem``."""
    source = LocalFile(path)
    try:
        with pytest.raises(PackageCorrupt) as raised:
            verify_package(source)
    finally:
        source.close()
    assert problem in str(raised.value)
    result = InProcess(capsys)(None, "package", "verify", str(path))
    assert result.returncode == 7 and result.stdout == ""
    line = one_line_error(result)
    assert problem in line
    return line


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def valid_looking(data: bytes, offset: int) -> tarfile.TarInfo:
    """Python's tarfile accepts the header at ``offset`` (its checksum is right)."""
    return tarfile.TarInfo.frombuf(data[offset : offset + BLOCK], "utf-8", "surrogateescape")


# --- the attacks --------------------------------------------------------------------


def test_the_untouched_package_verifies(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    result = InProcess(capsys)(None, "package", "verify", str(small.path))
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.startswith(f"{small.result.xxh3_128}  ") and "OK (5 members" in result.stdout
    )


def test_header_naming_another_path_than_the_index(
    small: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    at = small.entry("src/obs/a.g3").offset - BLOCK
    data = tamper_header(small.data, at, {0: b"../../evil".ljust(100, b"\0"), 345: bytes(155)})
    assert valid_looking(data, at).name == "../../evil"
    line = verify_fails(write(small.path, data), capsys, "its tar header names '../../evil'")
    assert "member 'src/obs/a.g3'" in line


def test_header_naming_another_path_through_pax(
    small: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = small.entry("src/Überblick.g3")
    pax_at = entry.offset - 3 * BLOCK  # PAX header, its records, then the ustar header
    data = bytearray(small.data)
    start = pax_at + BLOCK
    records = bytes(data[start : start + BLOCK])
    evil = records.replace(b"src/\xc3\x9cberblick.g3", b"../../evil/ick.g3")  # same length
    assert evil != records and len(evil) == len(records)
    data[start : start + BLOCK] = evil
    verify_fails(write(small.path, bytes(data)), capsys, "its tar header names '../../evil/ick.g3'")


@pytest.mark.parametrize(("flag", "kind"), [(b"2", "symbolic link"), (b"1", "hard link")])
def test_link_members(
    small: Built, capsys: pytest.CaptureFixture[str], flag: bytes, kind: str
) -> None:
    at = small.entry("src/obs/a.g3").offset - BLOCK
    data = tamper_header(small.data, at, {156: flag, 157: b"/etc/passwd"})
    assert valid_looking(data, at).issym() == (flag == b"2")
    verify_fails(write(small.path, data), capsys, f"it is a {kind}; a ccat package holds regular")


@pytest.mark.parametrize("flag", [b"5", b"g", b"L", b"\0"])
def test_other_member_types(small: Built, capsys: pytest.CaptureFixture[str], flag: bytes) -> None:
    at = small.entry("src/obs/b.g3").offset - BLOCK
    data = tamper_header(small.data, at, {156: flag})
    verify_fails(write(small.path, data), capsys, "a ccat package holds regular files only")


def test_corrupted_header_checksum(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    at = small.entry("src/obs/a.g3").offset - BLOCK
    data = tamper_header(small.data, at, {136: b"2"}, fix=False)  # the mtime's first digit
    with pytest.raises(tarfile.HeaderError):
        valid_looking(data, at)
    verify_fails(write(small.path, data), capsys, "the tar header checksum is wrong")


def test_header_size_other_than_the_index(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    at = small.entry("src/obs/a.g3").offset - BLOCK
    data = tamper_header(small.data, at, {124: b"%011o\0" % 1001})
    assert valid_looking(data, at).size == 1001
    verify_fails(write(small.path, data), capsys, "its tar header gives a size of 1001 bytes")


def test_header_fields_the_builder_never_writes(
    small: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    at = small.entry("src/obs/a.g3").offset - BLOCK
    data = tamper_header(small.data, at, {108: b"0001750\0", 265: b"root"})  # uid, uname
    assert valid_looking(data, at).uname == "root"
    verify_fails(write(small.path, data), capsys, "not written the way ccat-hpc writes them")


def test_data_offset_other_than_the_header(
    small: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    def shift(document: dict[str, Any]) -> None:  # b.g3 "starts" one block later, same end
        member = document["members"][4]
        member["offset"] += BLOCK
        member["size"] -= BLOCK

    data = with_index(small, shift)
    verify_fails(write(small.path, data), capsys, "take 512 bytes, but 1024 lie between")


def test_an_index_listing_no_members(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    data = with_index(small, lambda document: document.update(members=[]))
    line = verify_fails(write(small.path, data), capsys, "the index does not describe this package")
    assert "the 0 members its index lists end at byte 0" in line


def test_an_index_leaving_out_a_member(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    data = with_index(small, lambda document: document["members"].pop(2))
    verify_fails(write(small.path, data), capsys, "take 1536 bytes, but 2560 lie between")


@pytest.mark.parametrize(
    "garbage",
    [b"x", b"\0" * 100, b"\0" * 512, b"\0" * 1024, b"garbage".ljust(512, b"\0"), b"x" * 4096],
)
def test_trailing_garbage(small: Built, capsys: pytest.CaptureFixture[str], garbage: bytes) -> None:
    verify_fails(write(small.path, small.data + garbage), capsys, "not a valid ccat package")


def test_a_second_index_appended(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    data = small.data
    tail = data[small.result.index.header_offset :]
    line = verify_fails(write(small.path, data + tail), capsys, "does not describe")
    assert f"the index member is at byte {len(data)}" in line


@pytest.mark.parametrize("cut", [1, 100, 511, 512, 513, 1000, 1023, 1024])
def test_truncated_by_up_to_1_kib(
    small: Built, capsys: pytest.CaptureFixture[str], cut: int
) -> None:
    verify_fails(write(small.path, small.data[:-cut]), capsys, "not a valid ccat package")


def test_overlapping_index_ranges(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    def overlap(document: dict[str, Any]) -> None:
        document["members"][4]["offset"] = document["members"][3]["offset"] + 512

    data = with_index(small, overlap)
    verify_fails(write(small.path, data), capsys, "index ranges overlap or are out of order")


def test_out_of_order_index_ranges(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    def swap(document: dict[str, Any]) -> None:
        members = document["members"]
        members[3], members[4] = members[4], members[3]

    data = with_index(small, swap)
    verify_fails(write(small.path, data), capsys, "index ranges overlap or are out of order")


def test_duplicate_names(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    def duplicate(document: dict[str, Any]) -> None:
        document["members"][4]["name"] = document["members"][3]["name"]

    data = with_index(small, duplicate)
    verify_fails(write(small.path, data), capsys, "member name 'src/obs/a.g3' appears twice")


def test_negative_sizes(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    data = with_index(small, lambda document: document["members"][3].update(size=-1000))
    verify_fails(write(small.path, data), capsys, "size must be a non-negative integer, not -1000")


def test_unsafe_name_in_the_index(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    data = with_index(small, lambda document: document["members"][3].update(name="../evil"))
    verify_fails(write(small.path, data), capsys, "unsafe member name '../evil'")


def test_a_changed_padding_byte(small: Built, capsys: pytest.CaptureFixture[str]) -> None:
    entry = small.entry("src/obs/a.g3")
    data = bytearray(small.data)
    data[entry.offset + entry.size + 5] = 1
    verify_fails(write(small.path, bytes(data)), capsys, "padding after member 'src/obs/a.g3'")


def test_a_changed_data_byte_names_the_member(
    small: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = small.entry("src/obs/b.g3")
    data = bytearray(small.data)
    data[entry.offset + 7] ^= 0xFF
    verify_fails(write(small.path, bytes(data)), capsys, "do not match the index: src/obs/b.g3")


class ChangingSource:
    """A package whose index changes after it was read (as a file rewritten under us)."""

    def __init__(self, first: bytes, then: bytes) -> None:
        self.first, self.then, self.index_read = first, then, False

    def size(self) -> int:
        return len(self.first)

    def read(self, offset: int, length: int) -> bytes:
        return (self.then if self.index_read else self.first)[offset : offset + length]

    def read_into(self, offset: int, view: memoryview) -> None:
        self.index_read = True
        view[:] = self.then[offset : offset + len(view)]

    def close(self) -> None:
        pass


def test_an_index_that_changes_while_verifying(small: Built) -> None:
    other = with_index(small, lambda document: document["members"][0].update(xxh3_128="f" * 32))
    assert len(other) == len(small.data)
    with pytest.raises(PackageCorrupt, match="its index changed while it was being verified"):
        verify_package(ChangingSource(small.data, other), chunk_size=BLOCK)


# --- finding the index reads a bounded amount ---------------------------------------


class CountingSource:
    """Counts the bytes read (and the largest single read) of another source."""

    def __init__(self, inner: RangeSource) -> None:
        self.inner, self.bytes_read, self.largest = inner, 0, 0

    def size(self) -> int:
        return self.inner.size()

    def read(self, offset: int, length: int) -> bytes:
        self.bytes_read += length
        self.largest = max(self.largest, length)
        return self.inner.read(offset, length)

    def read_into(self, offset: int, view: memoryview) -> None:
        self.bytes_read += len(view)
        self.largest = max(self.largest, len(view))
        self.inner.read_into(offset, view)

    def close(self) -> None:
        self.inner.close()


class EndlessText:
    """A file of ``size`` bytes of text (no NUL) ending with two zero blocks."""

    def __init__(self, size: int) -> None:
        self._size = size

    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        zeros = max(0, offset + length - (self._size - 2 * BLOCK))
        return b"x" * (length - zeros) + bytes(zeros)

    def read_into(self, offset: int, view: memoryview) -> None:
        view[:] = self.read(offset, len(view))

    def close(self) -> None:
        pass


def sparse_file(path: Path, size: int, tail: bytes = b"") -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
        handle.seek(size - len(tail))
        handle.write(tail)
    return path


def test_a_large_file_of_zeros_fails_after_a_few_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = sparse_file(tmp_path / "zeros.tar", 6 * 1024**3)
    source = CountingSource(LocalFile(big))
    with pytest.raises(InvalidPackage, match="no index member before its end-of-archive blocks"):
        read_index(source)
    source.close()
    assert source.bytes_read <= 4 * BLOCK
    result = InProcess(capsys)(None, "package", "list", str(big))
    assert result.returncode == 7 and "no index member" in one_line_error(result)


def test_a_large_file_of_text_is_searched_only_up_to_the_limit(tmp_path: Path) -> None:
    limit = 1024 * 1024
    tail = b"y" * (3 * limit) + bytes(2 * BLOCK)
    big = sparse_file(tmp_path / "text.tar", 5 * 1024**3, tail)
    source = CountingSource(LocalFile(big))
    with pytest.raises(InvalidPackage, match=f"the {limit + 1} bytes before its end-of-archive"):
        read_index(source, limit=limit)
    source.close()
    assert limit < source.bytes_read <= limit + 4 * BLOCK + 1


def test_the_default_search_limit_on_a_50_gb_file() -> None:
    source = CountingSource(EndlessText(50 * 1000**3))
    with pytest.raises(InvalidPackage, match="hold no tar header"):
        read_index(source)
    assert MAX_INDEX_SIZE < source.bytes_read <= MAX_INDEX_SIZE + 4 * BLOCK + 1
    assert source.largest <= MAX_TAIL_WINDOW


def test_a_plain_tar_is_not_a_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.bin").write_bytes(os.urandom(5000))
    plain = tmp_path / "plain.tar"
    subprocess.run(["tar", "-cf", str(plain), "-C", str(tmp_path), "data.bin"], check=True)
    source = CountingSource(LocalFile(plain))
    with pytest.raises(InvalidPackage, match="no index member before"):
        read_index(source)
    source.close()
    assert source.bytes_read <= 4 * BLOCK
    line = verify_fails(plain, capsys, "not a valid ccat package")
    assert line.startswith("error: not a valid ccat package: ")


@pytest.mark.parametrize("size", [0, 100, 512, 1536])
def test_files_too_small_to_be_a_package(tmp_path: Path, size: int) -> None:
    path = write(tmp_path / "small.tar", bytes(size))
    with pytest.raises(InvalidPackage):
        read_index(LocalFile(path))


def test_an_engine_error_for_a_folder(tmp_path: Path) -> None:
    source = LocalFile(tmp_path)
    with pytest.raises(EngineError, match="cannot read"):
        read_index(source)
    source.close()


def test_an_index_whose_header_lies_about_its_size(small: Built) -> None:
    at = small.result.index.header_offset
    size = small.result.index.size
    data = tamper_header(small.data, at, {124: b"%011o\0" % (size - 1)})
    with pytest.raises(InvalidPackage, match=f"gives {size - 1} bytes, but {size} bytes of index"):
        read_index(LocalFile(write(small.path, data)))


def test_the_last_member_not_being_the_index(small: Built) -> None:
    at = small.result.index.header_offset
    data = tamper_header(small.data, at, {0: b"other.json".ljust(100, b"\0")})
    with pytest.raises(InvalidPackage, match=r"the last member is 'other\.json', not the index"):
        read_index(LocalFile(write(small.path, data)))


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.tar"
    os.mkfifo(fifo)
    source = LocalFile(fifo)
    with pytest.raises(InvalidPackage, match="too small"):
        read_index(source)
    source.close()
