"""An S3 bucket (and key prefix) as storage, through boto3.

Writes are multipart uploads (one PUT for small objects). Every part is sent with its
SHA-256 (and its MD5 too when ``content_md5`` is set, for stores that check only
Content-MD5), which the server checks before it accepts the part (a damaged part is
refused with BadDigest, never stored); the xxh3-128 the object must have is stored as
object metadata (``x-amz-meta-xxh3-128``). Parts are read in order, hashed with
xxh3-128 on the way, and uploaded by a few threads; at most ``max_in_flight`` parts are
in memory at a time. The upload is completed only when the whole object's xxh3-128
and size are the expected ones; otherwise it is aborted and nothing appears under the
key. After completing, the object is checked with a HEAD: size, the server's composite
SHA-256 (the same one the parts were sent with) and the metadata.

Reads are ranged GETs, streamed. Retries of 5xx, throttling and dropped connections
are botocore's ("standard" mode: exponential backoff with jitter); what still fails is
a StorageError that says whether trying later can help. Credentials come from the
environment (``CCAT_S3_ACCESS_KEY_ID``/``CCAT_S3_SECRET_ACCESS_KEY``, else boto3's own
chain: ``AWS_*`` variables, profiles); they are never part of a message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ccat_hpc.storage.base import (
    DEFAULT_CHUNK_SIZE,
    ChecksumMismatch,
    HashingCounter,
    ObjectInfo,
    StorageBackend,
    StorageError,
    check_key,
    check_prefix,
    check_range,
)
from ccat_hpc.storage.s3_client import as_storage_error
from ccat_hpc.storage.s3_parts import chain_parts, composite_sha256, stream_parts

METADATA_KEY = "xxh3-128"
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part (but the last)
DEFAULT_PART_SIZE = 8 * 1024 * 1024  # as boto3's; more parts in flight beat larger ones
MAX_PARTS = 10_000


@dataclass(frozen=True)
class S3Settings:
    """Where the objects are, and how to reach them (credentials are not kept here)."""

    endpoint_url: str
    bucket: str
    prefix: str = ""
    region: str = ""
    part_size: int = DEFAULT_PART_SIZE
    max_in_flight: int = 8
    max_attempts: int = 5
    #: also send each part's Content-MD5 (stores without x-amz-checksum support)
    content_md5: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    extra: Mapping[str, str] = field(default_factory=dict)


class S3Storage(StorageBackend):
    def __init__(self, settings: S3Settings, client: Any) -> None:
        if not MIN_PART_SIZE <= settings.part_size <= 5 * 1024**3:
            raise StorageError(f"S3 part size must be 5 MiB to 5 GiB, got {settings.part_size}")
        self.settings = settings
        self.client = client
        self._prefix = settings.prefix.strip("/") + "/" if settings.prefix.strip("/") else ""

    def describe(self) -> str:
        return f"s3://{self.settings.bucket}/{self._prefix} at {self.settings.endpoint_url}"

    def _key(self, key: str) -> str:
        return self._prefix + check_key(key)

    def _where(self, key: str) -> str:
        return f"s3://{self.settings.bucket}/{self._prefix}{key}"

    # -- reading -------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        head = self._head(key)
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            checksum=head.get("Metadata", {}).get(METADATA_KEY),
            modified=head.get("LastModified"),
        )

    def _head(self, key: str) -> dict[str, Any]:
        full = self._key(key)
        result: dict[str, Any] = self._call(
            key,
            "HEAD",
            lambda: self.client.head_object(
                Bucket=self.settings.bucket, Key=full, ChecksumMode="ENABLED"
            ),
        )
        return result

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.settings.bucket, Prefix=self._prefix + prefix)
        iterator = iter(pages)
        while True:
            page = self._call(prefix or "/", "LIST", lambda: next(iterator, None))
            if page is None:
                return
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=item["Key"][len(self._prefix) :],
                    size=int(item["Size"]),
                    modified=item.get("LastModified"),
                )

    def read(
        self,
        key: str,
        offset: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Iterator[bytes]:
        check_range(offset, length)
        size = self.stat(key).size
        end = size if length is None else offset + length
        if end > size or offset > size:
            raise StorageError(
                f"{self._where(key)}: bytes {offset}-{end} asked for, object has {size}"
            )
        if end == offset:
            return
        full = self._key(key)
        response = self._call(
            key,
            "GET",
            lambda: self.client.get_object(
                Bucket=self.settings.bucket, Key=full, Range=f"bytes={offset}-{end - 1}"
            ),
        )
        body = response["Body"]
        received = 0
        try:
            for piece in body.iter_chunks(chunk_size):
                received += len(piece)
                yield piece
        except Exception as exc:
            raise as_storage_error(exc, self._where(key), "GET") from None
        finally:
            body.close()
        if received != end - offset:
            raise StorageError(
                f"{self._where(key)}: GET gave {received} bytes, asked for {end - offset}",
                transient=True,
            )

    # -- writing -------------------------------------------------------------------------

    def write(
        self,
        key: str,
        chunks: Iterable[bytes | memoryview],
        *,
        checksum: str,
        size: int | None = None,
    ) -> ObjectInfo:
        full = self._key(key)
        counter = HashingCounter(checksum, size)
        self._abort_abandoned_uploads(key, full)
        part_size = self._part_size(size)
        parts = stream_parts(chunks, part_size, counter)
        first = next(parts, b"")
        second = next(parts, None)
        if second is None:
            counter.check(self._where(key))
            server_checksum = self._put(key, full, first, counter.expected_checksum)
        else:
            upload = _MultipartUpload(self, key, full, counter.expected_checksum)
            server_checksum = upload.run(chain_parts(first, second, parts), counter)
        try:
            return self._check_stored(key, counter, server_checksum)
        except ChecksumMismatch:
            with contextlib.suppress(StorageError):  # a wrong object never stays published
                self._call(
                    key,
                    "DELETE",
                    lambda: self.client.delete_object(Bucket=self.settings.bucket, Key=full),
                )
            raise

    def _abort_abandoned_uploads(self, key: str, full: str) -> None:
        """Multipart uploads of this key a killed writer left open are aborted (one writer
        per key at a time: the steps' claims see to that)."""
        listing = self._call(
            key,
            "listing open uploads",
            lambda: self.client.list_multipart_uploads(Bucket=self.settings.bucket, Prefix=full),
        )
        for upload in listing.get("Uploads", []):
            if upload.get("Key") == full:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(
                        Bucket=self.settings.bucket, Key=full, UploadId=upload["UploadId"]
                    )

    def _part_size(self, size: int | None) -> int:
        part_size = self.settings.part_size
        if size is not None:
            while size > part_size * MAX_PARTS:
                part_size *= 2
        return part_size

    def _put(self, key: str, full: str, data: bytes, checksum: str) -> str:
        digests = _digests(data, self.settings.content_md5)
        self._call(
            key,
            "PUT",
            lambda: self.client.put_object(
                Bucket=self.settings.bucket,
                Key=full,
                Body=data,
                Metadata={METADATA_KEY: checksum},
                **digests,
            ),
        )
        return digests["ChecksumSHA256"]

    def _check_stored(self, key: str, counter: HashingCounter, server_checksum: str) -> ObjectInfo:
        """The object as stored, checked: size, our metadata, and the server's SHA-256."""
        head = self._head(key)
        stored_size = int(head["ContentLength"])
        stored_checksum = head.get("Metadata", {}).get(METADATA_KEY)
        stored_sha256 = head.get("ChecksumSHA256")
        if stored_sha256 is None and not self.settings.content_md5:
            raise ChecksumMismatch(
                f"{self._where(key)}: the server keeps no SHA-256 of the object, so the parts' "
                "checksums may not have been checked; set CCAT_S3_CONTENT_MD5=1 for a store "
                "that checks only Content-MD5"
            )
        if stored_sha256 is not None and stored_sha256 != server_checksum:
            raise ChecksumMismatch(
                f"{self._where(key)}: the server's SHA-256 is {stored_sha256}, "
                f"the uploaded bytes had {server_checksum}"
            )
        if stored_size != counter.size or stored_checksum != counter.expected_checksum:
            raise ChecksumMismatch(
                f"{self._where(key)}: stored object has {stored_size} bytes and xxh3-128 "
                f"{stored_checksum}, expected {counter.size} and {counter.expected_checksum}"
            )
        return ObjectInfo(
            key=key,
            size=stored_size,
            checksum=stored_checksum,
            modified=head.get("LastModified"),
        )

    def delete(self, key: str) -> None:
        self.stat(key)
        full = self._key(key)
        self._call(
            key, "DELETE", lambda: self.client.delete_object(Bucket=self.settings.bucket, Key=full)
        )

    def server_checksum(self, key: str) -> str | None:
        """The server's SHA-256 of the object (composite ``…-N`` for a multipart one)."""
        value = self._head(key).get("ChecksumSHA256")
        return None if value is None else str(value)

    def _call(self, key: str, action: str, work: Any) -> Any:
        try:
            return work()
        except Exception as exc:
            raise as_storage_error(exc, self._where(key), action) from None


class _MultipartUpload:
    """One multipart upload: parts uploaded by a few threads, completed only if all is well."""

    def __init__(self, storage: S3Storage, key: str, full: str, checksum: str) -> None:
        self.storage = storage
        self.key = key
        self.full = full
        self.checksum = checksum
        self.bucket = storage.settings.bucket
        self.upload_id = ""
        self._slots = threading.BoundedSemaphore(storage.settings.max_in_flight)

    def run(self, parts: Iterator[bytes], counter: HashingCounter) -> str:
        """Upload every part and complete; the composite SHA-256 the server should hold."""
        created = self.storage._call(
            self.key,
            "multipart upload",
            lambda: self.storage.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=self.full,
                Metadata={METADATA_KEY: self.checksum},
                ChecksumAlgorithm="SHA256",
            ),
        )
        self.upload_id = created["UploadId"]
        try:
            done = self._upload_parts(parts)
            counter.check(self.storage._where(self.key))
            self._complete(done)
        except BaseException:
            self._abort()
            raise
        return composite_sha256(base64.b64decode(part["ChecksumSHA256"]) for part in done)

    def _upload_parts(self, parts: Iterator[bytes]) -> list[dict[str, Any]]:
        futures: list[Future[dict[str, Any]]] = []
        failed = threading.Event()

        def finished(future: Future[dict[str, Any]]) -> None:
            self._slots.release()
            if future.cancelled() or future.exception() is not None:
                failed.set()

        with ThreadPoolExecutor(max_workers=self.storage.settings.max_in_flight) as pool:
            try:
                for number, data in enumerate(parts, start=1):
                    self._slots.acquire()
                    if failed.is_set():
                        self._slots.release()
                        break
                    future = pool.submit(self._upload_part, number, data)
                    future.add_done_callback(finished)
                    futures.append(future)
                wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            for future in futures:
                future.cancel()
        return [future.result() for future in futures]

    def _upload_part(self, number: int, data: bytes) -> dict[str, Any]:
        digests = _digests(data, self.storage.settings.content_md5)
        response = self.storage._call(
            self.key,
            f"upload of part {number}",
            lambda: self.storage.client.upload_part(
                Bucket=self.bucket,
                Key=self.full,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
                **digests,
            ),
        )
        return {
            "PartNumber": number,
            "ETag": response["ETag"],
            "ChecksumSHA256": digests["ChecksumSHA256"],
        }

    def _complete(self, parts: list[dict[str, Any]]) -> None:
        self.storage._call(
            self.key,
            "completing the multipart upload",
            lambda: self.storage.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.full,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            ),
        )

    def _abort(self) -> None:
        # when the server is gone, its lifecycle rules clear the parts later
        with contextlib.suppress(Exception):
            self.storage.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.full, UploadId=self.upload_id
            )


def _digests(data: bytes, content_md5: bool = False) -> dict[str, str]:
    """The part's SHA-256 (always) and MD5 (for stores that check only Content-MD5)."""
    digests = {"ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")}
    if content_md5:
        digests["ContentMD5"] = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
    return digests
