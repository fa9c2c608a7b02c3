"""A folder as storage (local disk, NFS, Lustre, GPFS).

Writes go to a hidden partial file in the target folder (created exclusively, never
through a link), are hashed as they are written, fsynced, and renamed to the final
name only when size and xxh3-128 are the expected ones; the folder is fsynced after
the rename, so a crash leaves either the old state or the complete object. The
checksum is recorded as the extended attribute ``user.ccat.xxh3_128`` where the file
system keeps them.

No key reaches outside the root: keys are clean relative paths, and no component
below the root may be a symbolic link (opened with O_NOFOLLOW at every level). The
root itself must exist: it is never created, so a file system that is not mounted
is an error, not an empty store filling the disk under its mount point.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ccat_hpc.storage.base import (
    DEFAULT_CHUNK_SIZE,
    HashingCounter,
    ObjectInfo,
    ObjectNotFound,
    StorageBackend,
    StorageError,
    check_key,
    check_prefix,
    check_range,
)

CHECKSUM_ATTRIBUTE = "user.ccat.xxh3_128"
PARTIAL_PREFIX = ".ccat-partial-"
_NO_XATTR = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PosixStorage(StorageBackend):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.records_checksums = True

    def describe(self) -> str:
        return f"folder {self.root}"

    # -- reading -------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        with self._folder(key, create=False) as folder:
            name = key.rsplit("/", 1)[-1]
            info = self._lstat(folder, name, key)
            return ObjectInfo(
                key=key,
                size=info.st_size,
                checksum=self._recorded_checksum(folder, name),
                modified=datetime.fromtimestamp(info.st_mtime, UTC),
            )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        if not self.root.is_dir():  # an unmounted file system is no empty store
            raise StorageError(f"{self.root}: storage root is not a folder (not mounted?)")
        found: list[ObjectInfo] = []
        for current, folders, files in os.walk(self.root, onerror=None, followlinks=False):
            relative = os.path.relpath(current, self.root)
            base = "" if relative == "." else relative + "/"
            folders[:] = [f for f in folders if _could_hold(base + f + "/", prefix)]
            for name in files:
                key = base + name
                if name.startswith(PARTIAL_PREFIX) or not key.startswith(prefix):
                    continue
                info = os.lstat(os.path.join(current, name))
                if stat.S_ISREG(info.st_mode):
                    found.append(ObjectInfo(key=key, size=info.st_size))
        yield from sorted(found, key=lambda item: item.key)

    def read(
        self,
        key: str,
        offset: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Iterator[bytes]:
        check_key(key)
        check_range(offset, length)
        fd = self._open_object(key)
        try:
            size = os.fstat(fd).st_size
            end = size if length is None else offset + length
            if end > size or offset > size:
                raise StorageError(
                    f"{self._path(key)}: bytes {offset}-{end} asked for, object has {size}"
                )
            position = offset
            while position < end:
                data = os.pread(fd, min(chunk_size, end - position), position)
                if not data:
                    raise StorageError(f"{self._path(key)}: shrank while read", transient=True)
                position += len(data)
                yield data
        finally:
            os.close(fd)

    # -- writing -------------------------------------------------------------------------

    def write(
        self,
        key: str,
        chunks: Iterable[bytes | memoryview],
        *,
        checksum: str,
        size: int | None = None,
    ) -> ObjectInfo:
        check_key(key)
        counter = HashingCounter(checksum, size)
        name = key.rsplit("/", 1)[-1]
        with self._folder(key, create=True) as folder:
            _remove_abandoned_partials(folder, name)
            partial = f"{PARTIAL_PREFIX}{secrets.token_hex(8)}-{name}"[:255]
            fd = self._create(folder, partial, key)
            try:
                for chunk in chunks:  # a failing source raises its own error, unchanged
                    counter.update(chunk)
                    self._write_all(fd, chunk, key)
                digest = counter.check(str(self._path(key)))
                self._publish(fd, folder, partial, name, digest, key)
            except BaseException:
                _remove_quietly(folder, partial)
                raise
            finally:
                os.close(fd)
        return ObjectInfo(key=key, size=counter.size, checksum=digest)

    def _write_all(self, fd: int, data: bytes | memoryview, key: str) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise self._error(key, "cannot write", exc) from None

    def _publish(
        self, fd: int, folder: int, partial: str, name: str, digest: str, key: str
    ) -> None:
        """fsync, record the checksum, rename to the final name, fsync the folder."""
        try:
            os.fsync(fd)
            self._record_checksum(fd, digest)
            os.rename(partial, name, src_dir_fd=folder, dst_dir_fd=folder)
            os.fsync(folder)
        except OSError as exc:
            raise self._error(key, "cannot publish", exc) from None

    def delete(self, key: str) -> None:
        check_key(key)
        with self._folder(key, create=False) as folder:
            name = key.rsplit("/", 1)[-1]
            self._lstat(folder, name, key)
            try:
                os.unlink(name, dir_fd=folder)
            except OSError as exc:
                raise self._error(key, "cannot delete", exc) from None
            os.fsync(folder)

    def local_path(self, key: str, *, create_folders: bool = False) -> Path:
        """The file system path of ``key``, for tools that write files themselves (the
        package engine, transfer methods); its folders are made (never through a link)
        when asked. The caller publishes under the final name only when complete."""
        check_key(key)
        with self._folder(key, create=create_folders):
            return self._path(key)

    # -- helpers -------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / key

    def _folder(self, key: str, *, create: bool) -> _Folder:
        return _Folder(self, key, create=create)

    def _lstat(self, folder: int, name: str, key: str) -> os.stat_result:
        try:
            info = os.lstat(name, dir_fd=folder)
        except FileNotFoundError:
            raise ObjectNotFound(f"{self._path(key)}: no such object") from None
        except OSError as exc:
            raise self._error(key, "cannot stat", exc) from None
        if not stat.S_ISREG(info.st_mode):
            raise StorageError(f"{self._path(key)}: not a regular file")
        return info

    def _open_object(self, key: str) -> int:
        with self._folder(key, create=False) as folder:
            name = key.rsplit("/", 1)[-1]
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            try:
                fd = os.open(name, flags, dir_fd=folder)
            except FileNotFoundError:
                raise ObjectNotFound(f"{self._path(key)}: no such object") from None
            except OSError as exc:
                raise self._error(key, "cannot open", exc) from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise StorageError(f"{self._path(key)}: not a regular file")
            return fd

    def _create(self, folder: int, partial: str, key: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(partial, flags, 0o644, dir_fd=folder)
        except OSError as exc:
            raise self._error(key, "cannot create", exc) from None
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while written: a live writer's file is left alone
        return fd

    def _recorded_checksum(self, folder: int, name: str) -> str | None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        except OSError:
            return None
        try:
            return os.getxattr(fd, CHECKSUM_ATTRIBUTE).decode("ascii", "replace")
        except OSError:
            return None
        finally:
            os.close(fd)

    def _record_checksum(self, fd: int, digest: str) -> None:
        try:
            os.setxattr(fd, CHECKSUM_ATTRIBUTE, digest.encode("ascii"))
        except OSError as exc:
            if exc.errno not in _NO_XATTR:
                raise
            self.records_checksums = False

    def _error(self, key: str, action: str, exc: OSError) -> StorageError:
        transient = exc.errno in (
            errno.EIO,
            errno.ETIMEDOUT,
            errno.ESTALE,
            errno.ENOSPC,
            errno.EDQUOT,
        )
        return StorageError(f"{self._path(key)}: {action}: {exc.strerror}", transient=transient)


class _Folder:
    """The folder that holds ``key``, opened level by level without following links."""

    def __init__(self, storage: PosixStorage, key: str, *, create: bool) -> None:
        self.storage = storage
        self.key = key
        self.create = create
        self.fd = -1

    def __enter__(self) -> int:
        try:
            self.fd = os.open(self.storage.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise StorageError(
                f"{self.storage.root}: storage root unusable: {exc.strerror}",
                transient=exc.errno in (errno.EIO, errno.ETIMEDOUT, errno.ESTALE),
            ) from None
        for part in self.key.split("/")[:-1]:
            self.fd = self._descend(part)
        return self.fd

    def _descend(self, part: str) -> int:
        if self.create:
            try:
                os.mkdir(part, 0o755, dir_fd=self.fd)
            except FileExistsError:
                pass
            except OSError as exc:
                os.close(self.fd)
                raise self.storage._error(self.key, "cannot create its folder", exc) from None
        try:
            child = os.open(part, _DIRECTORY_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            os.close(self.fd)
            raise ObjectNotFound(f"{self.storage.root / self.key}: no such object") from None
        except OSError as exc:
            os.close(self.fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StorageError(
                    f"{self.storage.root / self.key}: '{part}' is a link or not a folder"
                ) from None
            raise self.storage._error(self.key, "cannot open its folder", exc) from None
        os.close(self.fd)
        return child

    def __exit__(self, *exc_info: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def _could_hold(folder_prefix: str, prefix: str) -> bool:
    """Whether keys below ``folder_prefix`` can start with ``prefix``."""
    return folder_prefix.startswith(prefix) or prefix.startswith(folder_prefix)


def _remove_abandoned_partials(folder: int, name: str) -> None:
    """Partial files of ``name`` that no live writer holds (a killed task's) are removed."""
    start = len(PARTIAL_PREFIX) + 16  # the prefix, then 16 hex digits
    ours = f"-{name}"[: 255 - start]  # as write() names (and cuts) them
    for entry in os.listdir(folder):
        if not (entry.startswith(PARTIAL_PREFIX) and entry[start:] == ours):
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _remove_quietly(folder, entry)
        except BlockingIOError:
            pass  # being written right now
        finally:
            os.close(fd)


def _remove_quietly(folder: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=folder)
