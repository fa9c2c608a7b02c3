"""Tape: a storage kind locations may declare, with no backend in this deployment.

Every operation fails with one clear error, so a location declared as tape is never
mistaken for an empty one and no step writes "to tape" without a tape library.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NoReturn

from ccat_hpc.storage.base import (
    DEFAULT_CHUNK_SIZE,
    ObjectInfo,
    StorageBackend,
    StorageNotDeployed,
)


class TapeStorage(StorageBackend):
    def __init__(self, library: str) -> None:
        self.library = library

    def describe(self) -> str:
        return f"tape library {self.library}"

    def _refuse(self) -> NoReturn:
        raise StorageNotDeployed(
            f"{self.describe()}: tape is not deployed (no tape backend in this ccat-hpc); "
            "make the location inactive or give it disk or S3 storage"
        )

    def stat(self, key: str) -> ObjectInfo:
        self._refuse()

    def exists(self, key: str) -> bool:
        self._refuse()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._refuse()

    def read(
        self,
        key: str,
        offset: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Iterator[bytes]:
        self._refuse()

    def write(
        self,
        key: str,
        chunks: Iterable[bytes | memoryview],
        *,
        checksum: str,
        size: int | None = None,
    ) -> ObjectInfo:
        self._refuse()

    def delete(self, key: str) -> None:
        self._refuse()
