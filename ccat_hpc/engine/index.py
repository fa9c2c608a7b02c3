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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

INDEX_NAME = ".ccat-package-index.json"
FORMAT = "ccat-package-index"
HASH_WIDTH = 32
_PLACEHOLDER = "0" * HASH_WIDTH


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


def parse_index(data: bytes) -> dict[str, Any]:
    """Decode an index; raises ValueError if it is not one."""
    index = json.loads(data.decode("utf-8"))
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ValueError("not a ccat package index")
    return index
