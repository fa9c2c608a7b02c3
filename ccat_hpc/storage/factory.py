"""The storage backend of a DataLocation, built from its row and the environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ccat_hpc.db.models import DataLocation, DiskDataLocation, S3DataLocation, TapeDataLocation
from ccat_hpc.storage.base import StorageBackend, StorageError
from ccat_hpc.storage.posix import PosixStorage
from ccat_hpc.storage.s3 import S3Settings, S3Storage
from ccat_hpc.storage.s3_client import S3Credentials, make_client
from ccat_hpc.storage.tape import TapeStorage


def backend_for(location: DataLocation, environ: Mapping[str, str]) -> StorageBackend:
    """The backend that reads and writes ``location``'s objects."""
    if isinstance(location, DiskDataLocation):
        return PosixStorage(Path(location.path))
    if isinstance(location, S3DataLocation):
        settings = s3_settings(location, environ)
        return S3Storage(settings, make_client(settings, S3Credentials.from_environment(environ)))
    if isinstance(location, TapeDataLocation):
        return TapeStorage(location.library)
    raise StorageError(f"location {location.name}: storage {location.storage_type} has no backend")


def s3_settings(location: S3DataLocation, environ: Mapping[str, str]) -> S3Settings:
    """The location's bucket and prefix; part size and parallel parts from the environment."""
    return S3Settings(
        endpoint_url=location.endpoint_url,
        bucket=location.bucket,
        prefix=location.prefix,
        region=location.region,
        part_size=_mebibytes(environ, "CCAT_S3_PART_SIZE_MB", 8),
        max_in_flight=_count(environ, "CCAT_S3_PARALLEL_PARTS", 8),
        max_attempts=_count(environ, "CCAT_S3_MAX_ATTEMPTS", 5),
        content_md5=environ.get("CCAT_S3_CONTENT_MD5", "").strip().lower() in ("1", "yes", "true"),
    )


def _mebibytes(environ: Mapping[str, str], name: str, default: int) -> int:
    return _count(environ, name, default) * 1024 * 1024


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise StorageError(f"{name} must be a positive whole number, got {text!r}")
    return int(text)
