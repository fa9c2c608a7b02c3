"""The package index: the tar's last member, one line per member.

Format (UTF-8 JSON, one member per line so the file stays readable with ``tar -xO``):

    {"format":"ccat-package-index","version":1,"checksum_algorithm":"xxh3_128","members":[
    {"name":"obs/det_000.g3","offset":1536,"size":1048576,"xxh3_128":"<32 hex>"},
    ...
    ]}

``offset`` is where the member's data starts in the tar, so one member can be read
with one byte-range read. Every hash has the same width, so the index's size is known
before any hash is: the layout is computed with a template whose hash fields are
placeholders, and the builder fills them in place.

An index read from a package is hostile until checked: :func:`parse_index` accepts
exactly what the builder writes for a consistent layout, byte for byte, and raises
:class:`~ccat_hpc.engine.errors.InvalidPackage` for anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import xxhash

from ccat_hpc.engine.errors import UnsafeMemberName, not_a_package
from ccat_hpc.engine.tarformat import BLOCK, MAX_HEADER_SIZE, padded
from ccat_hpc.paths import relative_path_problem

INDEX_NAME = ".ccat-package-index.json"
FORMAT = "ccat-package-index"
HASH_WIDTH = 32
#: The largest index a package may have (about two million members with typical
#: names); the builder refuses more, so a reader never looks further back than this.
MAX_INDEX_SIZE = 256 * 1024 * 1024
_PLACEHOLDER = "0" * HASH_WIDTH
_TOP_KEYS = frozenset({"format", "version", "checksum_algorithm", "members"})
_MEMBER_KEYS = frozenset({"name", "offset", "size", "xxh3_128"})
_HEX = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class IndexTemplate:
    data: bytes
    hash_positions: tuple[int, ...]  # where each member's hash starts in ``data``

    def fill(self, hashes: Sequence[str]) -> bytes:
        if len(hashes) != len(self.hash_positions):
            raise ValueError("one hash per member is needed")
        data = bytearray(self.data)
        for position, digest in zip(self.hash_positions, hashes, strict=True):
            if len(digest) != HASH_WIDTH:
                raise ValueError(f"hash {digest!r} is not {HASH_WIDTH} hex digits")
            data[position : position + HASH_WIDTH] = digest.encode("ascii")
        return bytes(data)


def index_template(members: Sequence[tuple[str, int, int]]) -> IndexTemplate:
    """The index of (name, size, data offset) members, with placeholder hashes."""
    head = (
        '{"format":"' + FORMAT + '","version":1,"checksum_algorithm":"xxh3_128","members":[\n'
    ).encode()
    parts = [head]
    position = len(head)
    positions = []
    for number, (name, size, offset) in enumerate(members):
        quoted = json.dumps(name, ensure_ascii=False)
        prefix = f'{{"name":{quoted},"offset":{offset},"size":{size},"xxh3_128":"'
        line = prefix + _PLACEHOLDER + '"}' + (",\n" if number < len(members) - 1 else "\n")
        encoded = line.encode("utf-8")
        positions.append(position + len(prefix.encode("utf-8")))
        parts.append(encoded)
        position += len(encoded)
    parts.append(b"]}\n")
    return IndexTemplate(b"".join(parts), tuple(positions))


def check_member_name(name: str) -> str:
    """A member name must be a clean relative path; anything that could escape is refused."""
    problem = relative_path_problem(name)
    if problem is not None:
        raise UnsafeMemberName(f"unsafe member name {name[:200]!r}: {problem}")
    if name == INDEX_NAME:
        raise UnsafeMemberName(f"member name {name!r} is reserved for the package index")
    return name


def check_member_names(names: Iterable[str]) -> None:
    """Every name clean, none twice, and none also the folder of another member."""
    seen: set[str] = set()
    folders: dict[str, str] = {}
    for name in names:
        check_member_name(name)
        if name in seen:
            raise UnsafeMemberName(f"member name {name!r} appears twice")
        if name in folders:
            raise UnsafeMemberName(f"member {name!r} is also the folder of {folders[name]!r}")
        for folder in _folders_of(name):
            if folder in seen:
                raise UnsafeMemberName(f"member {folder!r} is also the folder of {name!r}")
            folders.setdefault(folder, name)
        seen.add(name)


def _folders_of(name: str) -> Iterable[str]:
    position = name.find("/")
    while position >= 0:
        yield name[:position]
        position = name.find("/", position + 1)


@dataclass(frozen=True)
class IndexEntry:
    name: str
    offset: int
    size: int
    xxh3_128: str

    @property
    def padded_end(self) -> int:
        """Offset just past the member's data and its padding."""
        return self.offset + padded(self.size)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "offset": self.offset,
            "size": self.size,
            "xxh3_128": self.xxh3_128,
        }


@dataclass(frozen=True)
class PackageIndex:
    """A checked index, and where the index member sits in its package."""

    members: tuple[IndexEntry, ...]
    header_offset: int  # of the index member's header: right after the last member
    size: int  # of the index member's data
    xxh3_128: str  # of that data

    @property
    def package_size(self) -> int:
        """The size of the package this index describes (index data, padding, end blocks)."""
        return self.header_offset + BLOCK + padded(self.size) + 2 * BLOCK


def parse_index(data: bytes, header_offset: int) -> PackageIndex:
    """The index whose member header is at ``header_offset``; InvalidPackage if it is not one.

    Accepted is exactly what the builder writes: the format's keys and types, clean and
    unique names, offsets leaving one header region between members, the index member
    right after the last one, and the very bytes the builder would write for them.
    """
    if len(data) > MAX_INDEX_SIZE:
        raise not_a_package(f"its index is larger than {MAX_INDEX_SIZE} bytes")
    raw_members = _members_of(_decode(data))
    entries = tuple(_entry(number, raw) for number, raw in enumerate(raw_members))
    try:
        check_member_names(entry.name for entry in entries)
    except UnsafeMemberName as exc:
        raise not_a_package(f"its index: {exc}") from None
    _check_offsets(entries, header_offset)
    _check_canonical(data, entries)
    return PackageIndex(entries, header_offset, len(data), str(xxhash.xxh3_128_hexdigest(data)))


def _not_an_integer(text: str) -> object:
    raise ValueError(f"{text[:40]} is not an integer")


def _integer(text: str) -> int:
    """A JSON integer of at most 19 digits (every offset and size of a package fits)."""
    if len(text.lstrip("-")) > 19:
        raise ValueError(f"a number of {len(text)} digits")
    return int(text)


def _decode(data: bytes) -> object:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise not_a_package("its index is not UTF-8 text") from None
    try:
        return json.loads(
            text, parse_int=_integer, parse_float=_not_an_integer, parse_constant=_not_an_integer
        )
    except RecursionError:
        raise not_a_package("its index is nested too deeply") from None
    except ValueError as exc:
        raise not_a_package(f"its index is unreadable: {exc}") from None


def _members_of(document: object) -> list[object]:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise not_a_package("its last member is not a ccat package index")
    if document.keys() != _TOP_KEYS:
        raise not_a_package(f"its index has the keys {sorted(document)}, not {sorted(_TOP_KEYS)}")
    version = document["version"]
    if type(version) is not int or version != 1:
        raise not_a_package(f"index version {_show(version)} is not version 1")
    if document["checksum_algorithm"] != "xxh3_128":
        raise not_a_package(f"index checksums are {_show(document['checksum_algorithm'])}")
    members = document["members"]
    if not isinstance(members, list):
        raise not_a_package("its index members are not a list")
    return members


def _entry(number: int, raw: object) -> IndexEntry:
    if not isinstance(raw, dict) or raw.keys() != _MEMBER_KEYS:
        raise not_a_package(f"index entry {number} is not an object of {sorted(_MEMBER_KEYS)}")
    name, digest = raw["name"], raw["xxh3_128"]
    if not isinstance(name, str):
        raise not_a_package(f"index entry {number}: the name is {_show(name)}, not a string")
    if not isinstance(digest, str) or not _HEX.fullmatch(digest):
        raise not_a_package(f"index entry {number} ({name[:200]!r}): xxh3_128 is {_show(digest)}")
    return IndexEntry(name, _count(raw, "offset", number), _count(raw, "size", number), digest)


def _count(raw: dict[str, object], key: str, number: int) -> int:
    value = raw[key]
    if type(value) is not int or value < 0:
        raise not_a_package(
            f"index entry {number}: {key} must be a non-negative integer, not {_show(value)}"
        )
    return value


def _show(value: object) -> str:
    """A short description of a JSON value for an error message (never a huge repr)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else "a huge integer"
    if isinstance(value, str):
        return repr(value[:40] + ("…" if len(value) > 40 else ""))
    return "a list" if isinstance(value, list) else "an object"


def _check_offsets(entries: Sequence[IndexEntry], header_offset: int) -> None:
    """Members in order, each after one header region (whole blocks), the index right after."""
    end = 0
    for entry in entries:
        gap = entry.offset - end
        if gap < 0:
            raise not_a_package(
                f"index ranges overlap or are out of order: {entry.name!r} starts at byte "
                f"{entry.offset}, before the member ahead of it ends (byte {end})"
            )
        if gap < BLOCK or gap > MAX_HEADER_SIZE or gap % BLOCK:
            raise not_a_package(
                f"{entry.name!r} has {gap} bytes of header space before it (at byte {end}); "
                f"a ccat package has {BLOCK} to {MAX_HEADER_SIZE}, in whole blocks"
            )
        end = entry.padded_end
    if header_offset != end:
        raise not_a_package(
            f"the index member is at byte {header_offset}, but the {len(entries)} members "
            f"its index lists end at byte {end}: the index does not describe this package"
        )


def _check_canonical(data: bytes, entries: Sequence[IndexEntry]) -> None:
    template = index_template([(entry.name, entry.size, entry.offset) for entry in entries])
    if template.fill([entry.xxh3_128 for entry in entries]) != data:
        raise not_a_package("its index is not written the way ccat-hpc writes one")
