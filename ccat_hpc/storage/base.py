"""The storage interface: what the pipeline steps need from a place that holds bytes.

A backend stores objects under keys (clean relative POSIX paths below the location's
root or prefix) and offers exactly what the steps use: stat, exists, list by prefix,
ranged reads, a streaming write published atomically under its final name, delete, and
the checksum the store recorded when the object was written. Nothing reads or writes a
whole object in memory: writes take an iterable of chunks, reads give chunks back.

Every write is given the xxh3-128 the bytes must have. The backend hashes what it
writes and publishes the object only when the hash and size match, so no object with
the wrong bytes is ever visible under its final name, and the checksum it records is
one it has computed, not one it was told.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import xxhash

from ccat_hpc.errors import CcatHpcError
from ccat_hpc.paths import relative_path_problem

#: The piece size of streaming reads and writes: large enough for full disk and
#: network speed, small enough that memory stays bounded whatever the object.
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024


class StorageError(CcatHpcError):
    """A storage operation failed; ``transient`` says whether trying again can help."""

    exit_code = 9

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ObjectNotFound(StorageError):
    """No object under that key."""


class ChecksumMismatch(StorageError):
    """The bytes given to a write (or found in the store) are not the ones expected."""


class StorageNotDeployed(StorageError):
    """The location's storage kind has no backend in this deployment (tape)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows of one object."""

    key: str
    size: int
    #: the xxh3-128 (hex) the store recorded when the object was written; None when
    #: the store keeps none (a listing, or a file written by something else)
    checksum: str | None = None
    modified: datetime | None = None


def check_key(key: str) -> str:
    """``key`` when it is a clean relative path (no '..', no leading '/'), else StorageError."""
    problem = relative_path_problem(key)
    if problem is not None:
        raise StorageError(f"invalid object key: {problem}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a clean relative path that may end with '/'."""
    if prefix:
        check_key(prefix.rstrip("/"))
    return prefix


def check_range(offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise StorageError(f"invalid byte range: offset {offset}, length {length}")


class HashingCounter:
    """The xxh3-128 and size of bytes as they stream past, checked against what was expected."""

    def __init__(self, expected_checksum: str, expected_size: int | None) -> None:
        self.expected_checksum = expected_checksum.lower()
        self.expected_size = expected_size
        self.size = 0
        self._hash = xxhash.xxh3_128()

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)
        if self.expected_size is not None and self.size > self.expected_size:
            raise ChecksumMismatch(f"more than the expected {self.expected_size} bytes")

    def check(self, what: str) -> str:
        """The checksum, when size and checksum are the expected ones; else ChecksumMismatch."""
        digest = str(self._hash.hexdigest())
        if self.expected_size is not None and self.size != self.expected_size:
            raise ChecksumMismatch(
                f"{what}: {self.size} bytes written, expected {self.expected_size}; not published"
            )
        if digest != self.expected_checksum:
            raise ChecksumMismatch(
                f"{what}: xxh3-128 of the written bytes is {digest}, expected "
                f"{self.expected_checksum}; not published"
            )
        return digest


class StorageBackend(abc.ABC):
    """One place that holds objects: a folder, an S3 bucket and prefix, (a tape library)."""

    #: whether :meth:`stat` gives back the checksum recorded at write time
    records_checksums: bool = True

    @abc.abstractmethod
    def describe(self) -> str:
        """Where this is, for messages (never a credential)."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """The object's size and recorded checksum; ObjectNotFound when there is none."""

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order."""

    @abc.abstractmethod
    def read(
        self,
        key: str,
        offset: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Iterator[bytes]:
        """The bytes ``[offset, offset + length)`` (to the end when None), in pieces.

        Asking for bytes past the end of the object is an error: a short object is a
        damaged one, never silently a shorter read.
        """

    def read_bytes(self, key: str, offset: int, length: int) -> bytes:
        """A small range as one bytes object (an index, a header; never a whole package)."""
        return b"".join(self.read(key, offset, length))

    @abc.abstractmethod
    def write(
        self,
        key: str,
        chunks: Iterable[bytes | memoryview],
        *,
        checksum: str,
        size: int | None = None,
    ) -> ObjectInfo:
        """Store the bytes under ``key``, visible only once complete and as expected.

        ``checksum`` (and ``size`` when given) are what the bytes must be; a mismatch
        raises ChecksumMismatch and leaves nothing under ``key`` (an older object
        under the same key stays as it was).
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; ObjectNotFound when there is none."""
