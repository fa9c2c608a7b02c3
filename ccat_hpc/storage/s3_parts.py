"""Cutting a stream into multipart-upload parts, and the S3 composite checksum (pure)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator

from ccat_hpc.storage.base import HashingCounter


def composite_sha256(part_digests: Iterable[bytes]) -> str:
    """The S3 composite checksum of a multipart object: SHA-256 of the parts' SHA-256s, '-N'."""
    digests = list(part_digests)
    combined = hashlib.sha256(b"".join(digests)).digest()
    return f"{base64.b64encode(combined).decode('ascii')}-{len(digests)}"


def stream_parts(
    chunks: Iterable[bytes | memoryview], part_size: int, counter: HashingCounter
) -> Iterator[bytes]:
    """The bytes of ``chunks`` cut into parts of ``part_size`` (the last may be shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        counter.update(chunk)
        buffer += chunk
        while len(buffer) >= part_size:
            with memoryview(buffer) as view:
                part = bytes(view[:part_size])
            del buffer[:part_size]
            yield part
    if buffer:
        yield bytes(buffer)


def chain_parts(first: bytes, second: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield second
    yield from rest
