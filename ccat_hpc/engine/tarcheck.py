"""Reading a package's tar headers back, strictly (pure functions).

A member's header region is what the builder writes in front of its data
(:func:`ccat_hpc.engine.tarformat.member_headers`): a ustar header, or a PAX header
with its records and then the ustar header. Reading one checks every header checksum
and field, allows regular files only (a PAX header only as the extended header of the
member it precedes), and finally that the region is byte for byte the one the builder
writes for the name, size, mtime and mode read from it. Every problem is an
:class:`~ccat_hpc.engine.errors.InvalidPackage` that says where it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ccat_hpc.engine.errors import not_a_package
from ccat_hpc.engine.index import INDEX_NAME
from ccat_hpc.engine.tarformat import BLOCK, member_headers, padded

REGULAR, PAX = b"0", b"x"
_KINDS = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"5": "a folder",
    b"6": "a FIFO",
    b"7": "a contiguous file",
    b"g": "a PAX global header",
    b"K": "a GNU long link name",
    b"L": "a GNU long name",
    b"x": "a PAX header that extends another PAX header",
}
_OCTAL = re.compile(rb" *([0-7]+) *")
_PAX_RECORD = re.compile(rb"([1-9][0-9]*) ")
#: The PAX records a package has, and the values they may take.
_PAX_VALUES = {
    "path": re.compile(r".+", re.DOTALL),
    "size": re.compile(r"[0-9]{1,20}"),
    "mtime": re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,9})?"),
}


@dataclass(frozen=True)
class UstarBlock:
    name: str  # prefix and name joined
    mode: int
    size: int
    mtime: int
    typeflag: bytes


@dataclass(frozen=True)
class TarEntry:
    """What a member's header region says (PAX records applied)."""

    name: str
    size: int
    mtime_ns: int
    mode: int


def parse_block(block: bytes, where: str) -> UstarBlock:
    """One ustar header block, its checksum and numeric fields checked."""
    if len(block) != BLOCK:
        raise not_a_package(f"{where}: a tar header cut short")
    if not block.strip(b"\0"):
        raise not_a_package(f"{where}: a zero block where a tar header should be")
    if _octal(block, 148, 8, "checksum", where) != header_checksum(block):
        raise not_a_package(f"{where}: the tar header checksum is wrong")
    if block[257:265] != b"ustar\x0000":
        raise not_a_package(f"{where}: not a POSIX ustar header")
    return UstarBlock(
        name=_name(block, where),
        mode=_octal(block, 100, 8, "mode", where),
        size=_octal(block, 124, 12, "size", where),
        mtime=_octal(block, 136, 12, "mtime", where),
        typeflag=block[156:157],
    )


def header_checksum(block: bytes | bytearray) -> int:
    """The sum of a header's bytes, its checksum field counted as spaces."""
    return sum(block[:148]) + 8 * ord(" ") + sum(block[156:BLOCK])


def _octal(block: bytes, start: int, width: int, what: str, where: str) -> int:
    field = block[start : start + width].split(b"\0", 1)[0]
    match = _OCTAL.fullmatch(field)
    if match is None:
        raise not_a_package(f"{where}: the tar header's {what} field is not an octal number")
    return int(match.group(1), 8)


def _name(block: bytes, where: str) -> str:
    name = block[0:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0]
    try:
        text = name.decode("utf-8")
        return f"{prefix.decode('utf-8')}/{text}" if prefix else text
    except UnicodeDecodeError:
        raise not_a_package(f"{where}: the tar header's name is not UTF-8") from None


def read_header_region(region: bytes, where: str) -> TarEntry:
    """The member a header region describes; it must hold exactly its headers."""
    first = parse_block(region[:BLOCK], where)
    if first.typeflag != PAX:
        _check_length(region, BLOCK, where)
        return _entry(first, {}, where)
    main_at = BLOCK + padded(first.size)
    _check_length(region, main_at + BLOCK, where)
    records = parse_pax_records(region[BLOCK : BLOCK + first.size], where)
    return _entry(parse_block(region[main_at:], where), records, where)


def _check_length(region: bytes, needed: int, where: str) -> None:
    if len(region) != needed:
        raise not_a_package(
            f"{where}: its headers take {needed} bytes, but {len(region)} lie between the "
            "previous member and its data"
        )


def _entry(block: UstarBlock, records: dict[str, str], where: str) -> TarEntry:
    if block.typeflag != REGULAR:
        kind = _KINDS.get(block.typeflag, f"of tar type {block.typeflag!r}")
        raise not_a_package(f"{where}: it is {kind}; a ccat package holds regular files only")
    name = records.get("path", block.name)
    size = int(records["size"]) if "size" in records else block.size
    return TarEntry(name, size, _mtime_ns(records.get("mtime"), block.mtime), block.mode)


def _mtime_ns(record: str | None, seconds: int) -> int:
    if record is None:
        return seconds * 1_000_000_000
    whole, _, fraction = record.partition(".")
    return int(whole) * 1_000_000_000 + int(fraction.ljust(9, "0"))


def parse_pax_records(data: bytes, where: str) -> dict[str, str]:
    """The ``LEN key=value\\n`` records of a PAX header; only path, size and mtime, once each."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        key, value, position = _pax_record(data, position, where)
        pattern = _PAX_VALUES.get(key)
        if pattern is None or key in records:
            raise not_a_package(f"{where}: unexpected or repeated PAX record {key[:40]!r}")
        if not pattern.fullmatch(value):
            raise not_a_package(f"{where}: PAX record {key} has the value {value[:40]!r}")
        records[key] = value
    return records


def _pax_record(data: bytes, position: int, where: str) -> tuple[str, str, int]:
    """One record from ``position``: (key, value, where the next record starts)."""
    length = _PAX_RECORD.match(data, position, position + 21)
    end = position + int(length.group(1)) if length is not None else 0
    if length is None or end > len(data) or data[end - 1 : end] != b"\n":
        raise not_a_package(f"{where}: a malformed PAX record at byte {position} of its header")
    key, equals, value = data[length.end() : end - 1].partition(b"=")
    try:
        if equals:
            return key.decode("utf-8"), value.decode("utf-8"), end
    except UnicodeDecodeError:
        pass
    raise not_a_package(f"{where}: a PAX record that is not key=value in UTF-8")


def written_for(region: bytes, name: str, size: int) -> bool:
    """Whether ``region`` is exactly the builder's headers of a member of this name and
    size (with the mode and mtime it records). The quick check for every member: only
    when it fails does :func:`read_header_region` look closer, to say what is wrong."""
    main = region[-BLOCK:]
    pax_mtime = region.find(b" mtime=", BLOCK, len(region) - BLOCK)
    try:
        mode = int(main[100:107], 8)
        if pax_mtime < 0:
            mtime_ns = int(main[136:147], 8) * 1_000_000_000
        else:
            value = region[pax_mtime + 7 : region.find(b"\n", pax_mtime)]
            mtime_ns = _mtime_ns(value.decode("ascii"), 0)
        return region == member_headers(name, size, mtime_ns, mode)
    except ValueError:
        return False


def check_canonical(region: bytes, entry: TarEntry, where: str) -> None:
    """The region must be exactly what the builder writes for this entry."""
    try:
        expected = member_headers(entry.name, entry.size, entry.mtime_ns, entry.mode)
    except ValueError:
        expected = b""
    if expected != region:
        raise not_a_package(
            f"{where}: its tar headers are not written the way ccat-hpc writes them"
        )


def check_index_header(block: bytes, size: int, where: str) -> None:
    """The index member's header: one plain ustar block naming the index, of ``size`` bytes."""
    entry = read_header_region(block, where)
    if entry.name != INDEX_NAME:
        raise not_a_package(f"{where}: the last member is {entry.name[:100]!r}, not the index")
    if entry.size != size:
        raise not_a_package(
            f"{where}: its header gives {entry.size} bytes, but {size} bytes of index follow it"
        )
    check_canonical(block, TarEntry(INDEX_NAME, size, entry.mtime_ns, 0o644), where)
