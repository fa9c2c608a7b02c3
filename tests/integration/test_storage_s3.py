"""What only the S3 backend has, on the real S3 server (SeaweedFS) of the test services."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterator

import pytest

from ccat_hpc.storage import s3 as s3_module
from ccat_hpc.storage.base import ChecksumMismatch, StorageError
from ccat_hpc.storage.s3 import METADATA_KEY, S3Settings, S3Storage, composite_sha256
from ccat_hpc.storage.s3_client import S3Credentials, make_client
from tests.integration.test_storage import MiB, digest, make_s3, pieces, s3_environment

pytestmark = pytest.mark.s3


@pytest.fixture
def storage() -> Iterator[S3Storage]:
    backend = make_s3(f"s3-only/{uuid.uuid4().hex}")
    assert isinstance(backend, S3Storage)
    yield backend
    for item in list(backend.list()):
        backend.delete(item.key)


def uploads_in_progress(storage: S3Storage) -> list[str]:
    response = storage.client.list_multipart_uploads(
        Bucket=storage.settings.bucket, Prefix=storage.settings.prefix
    )
    return [upload["Key"] for upload in response.get("Uploads", [])]


def test_the_server_holds_the_composite_sha256_of_the_parts(storage: S3Storage) -> None:
    data = os.urandom(11 * MiB)
    storage.write("p.tar", pieces(data, MiB), checksum=digest(data), size=len(data))
    parts = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    expected = composite_sha256(hashlib.sha256(part).digest() for part in parts)
    assert storage.server_checksum("p.tar") == expected
    head = storage.client.head_object(
        Bucket=storage.settings.bucket, Key=f"{storage.settings.prefix}/p.tar"
    )
    assert head["Metadata"][METADATA_KEY] == digest(data)
    assert head["ETag"].strip('"').endswith("-3")


def test_a_small_object_is_one_put_with_its_sha256(storage: S3Storage) -> None:
    data = b"small package"
    storage.write("s.tar", [data], checksum=digest(data))
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert storage.server_checksum("s.tar") == sha


def test_the_server_refuses_a_part_whose_bytes_do_not_match_its_digest(
    storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = s3_module._digests
    sent: list[int] = []

    def damaged(data: bytes, content_md5: bool = False) -> dict[str, str]:
        digests = real(data, content_md5)
        sent.append(len(data))
        if len(sent) == 2:  # the second part: as if flipped on the wire
            digests = real(data[:-1] + bytes([data[-1] ^ 1]), content_md5)
        return digests

    monkeypatch.setattr(s3_module, "_digests", damaged)
    data = os.urandom(12 * MiB)
    with pytest.raises(ChecksumMismatch, match="refused the bytes"):
        storage.write("damaged.tar", pieces(data, MiB), checksum=digest(data))
    assert not storage.exists("damaged.tar")
    assert uploads_in_progress(storage) == []


def test_a_failed_multipart_upload_is_aborted(storage: S3Storage) -> None:
    data = os.urandom(11 * MiB)
    with pytest.raises(ChecksumMismatch):
        storage.write("aborted.tar", pieces(data, MiB), checksum=digest(b"another"))
    assert uploads_in_progress(storage) == []
    assert not storage.exists("aborted.tar")


def test_wrong_credentials_are_a_permanent_error_that_never_shows_the_secret() -> None:
    environ = s3_environment()
    settings = S3Settings(
        endpoint_url=environ["CCAT_S3_ENDPOINT"], bucket=environ["CCAT_S3_BUCKET"]
    )
    secret = "not-the-secret-" + uuid.uuid4().hex
    client = make_client(settings, S3Credentials("ccat-test", secret))
    storage = S3Storage(settings, client)
    with pytest.raises(StorageError) as caught:
        storage.stat("anything")
    assert not caught.value.transient
    assert secret not in str(caught.value)
    with pytest.raises(StorageError) as caught:
        storage.write("x", [b"x"], checksum=digest(b"x"))
    assert secret not in str(caught.value)
    assert "s3://" in str(caught.value)


def test_an_unreachable_endpoint_is_a_transient_error() -> None:
    settings = S3Settings(
        endpoint_url="http://127.0.0.1:9", bucket="b", max_attempts=1, connect_timeout=1
    )
    storage = S3Storage(settings, make_client(settings, S3Credentials("k", "s")))
    with pytest.raises(StorageError) as caught:
        storage.stat("x")
    assert caught.value.transient
    assert "127.0.0.1:9" in str(caught.value)


def test_with_content_md5_a_part_whose_md5_is_wrong_is_refused_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = make_s3(f"s3-only/{uuid.uuid4().hex}", content_md5=True)
    assert isinstance(storage, S3Storage)
    real = s3_module._digests

    def wrong_md5(data: bytes, content_md5: bool = False) -> dict[str, str]:
        digests = real(data, content_md5)
        assert content_md5 and "ContentMD5" in digests
        return {**digests, "ContentMD5": real(data + b"x", True)["ContentMD5"]}

    monkeypatch.setattr(s3_module, "_digests", wrong_md5)
    data = os.urandom(1000)
    with pytest.raises(ChecksumMismatch, match="refused the bytes"):
        storage.write("md5.tar", [data], checksum=digest(data))
    monkeypatch.setattr(s3_module, "_digests", real)
    storage.write("md5.tar", [data], checksum=digest(data))
    assert storage.stat("md5.tar").size == 1000
    storage.delete("md5.tar")


def test_an_upload_a_killed_writer_left_open_is_aborted_by_the_next_write(
    storage: S3Storage,
) -> None:
    full = f"{storage.settings.prefix}/left.tar"
    storage.client.create_multipart_upload(Bucket=storage.settings.bucket, Key=full)
    assert uploads_in_progress(storage) == [full]
    data = os.urandom(6 * MiB)
    storage.write("left.tar", pieces(data, MiB), checksum=digest(data))
    assert uploads_in_progress(storage) == []
    assert storage.stat("left.tar").size == len(data)
