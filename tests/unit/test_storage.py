"""The storage backends' decisions and error paths, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from ccat_hpc.storage.base import (
    ChecksumMismatch,
    HashingCounter,
    ObjectNotFound,
    StorageError,
    StorageNotDeployed,
    check_key,
)
from ccat_hpc.storage.s3 import S3Settings, S3Storage
from ccat_hpc.storage.s3_client import S3Credentials, as_storage_error
from ccat_hpc.storage.tape import TapeStorage

MiB = 1024 * 1024


class FakeClientError(Exception):
    def __init__(self, code: str, status: int, message: str = "the server says no") -> None:
        super().__init__(f"An error occurred ({code})")
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


@pytest.mark.parametrize(
    ("code", "status", "kind", "transient"),
    [
        ("NoSuchKey", 404, ObjectNotFound, False),
        ("404", 404, ObjectNotFound, False),
        ("BadDigest", 400, ChecksumMismatch, True),
        ("InvalidDigest", 400, ChecksumMismatch, True),
        ("NoSuchUpload", 404, StorageError, True),
        ("SlowDown", 503, StorageError, True),
        ("InternalError", 500, StorageError, True),
        ("ServiceUnavailable", 503, StorageError, True),
        ("RequestTimeout", 400, StorageError, True),
        ("AccessDenied", 403, StorageError, False),
        ("InvalidAccessKeyId", 403, StorageError, False),
        ("SomethingNew", 502, StorageError, True),
    ],
)
def test_s3_failures_are_classified(
    code: str, status: int, kind: type[StorageError], transient: bool
) -> None:
    error = as_storage_error(FakeClientError(code, status), "s3://b/k", "PUT")
    assert type(error) is kind
    assert error.transient is transient
    assert "s3://b/k" in str(error)


def test_a_missing_bucket_is_not_a_missing_object() -> None:
    error = as_storage_error(FakeClientError("NoSuchBucket", 404), "s3://b/k", "GET")
    assert not isinstance(error, ObjectNotFound)
    assert "bucket does not exist" in str(error)


def test_connection_problems_are_transient_and_other_surprises_are_not() -> None:
    assert as_storage_error(ConnectionResetError("reset"), "s3://b/k", "GET").transient
    assert as_storage_error(TimeoutError(), "s3://b/k", "GET").transient
    surprise = as_storage_error(ValueError("secret=abc"), "s3://b/k", "GET")
    assert not surprise.transient
    assert "secret=abc" not in str(surprise)  # an unknown error's text is not repeated


def test_credentials_come_from_ccat_variables_and_never_show() -> None:
    credentials = S3Credentials("key-id", "very-secret", "token-value")
    assert "very-secret" not in repr(credentials) and "token-value" not in repr(credentials)
    environ = {"CCAT_S3_ACCESS_KEY_ID": "a", "CCAT_S3_SECRET_ACCESS_KEY": "b"}
    assert S3Credentials.from_environment(environ) == S3Credentials("a", "b")
    assert S3Credentials.from_environment({}) == S3Credentials()


def test_the_part_size_grows_so_that_a_huge_object_fits_in_ten_thousand_parts() -> None:
    storage = S3Storage(S3Settings(endpoint_url="", bucket="b", part_size=5 * MiB), client=None)
    assert storage._part_size(None) == 5 * MiB
    assert storage._part_size(10_000 * 5 * MiB) == 5 * MiB
    assert storage._part_size(10_000 * 5 * MiB + 1) == 10 * MiB
    assert storage._part_size(5 * 10**12) * 10_000 >= 5 * 10**12


@pytest.mark.parametrize("part_size", [MiB, 6 * 1024**3])
def test_a_part_size_s3_cannot_take_is_refused(part_size: int) -> None:
    with pytest.raises(StorageError, match="part size"):
        S3Storage(S3Settings(endpoint_url="", bucket="b", part_size=part_size), client=None)


def test_the_prefix_is_kept_apart_from_keys() -> None:
    storage = S3Storage(S3Settings(endpoint_url="", bucket="b", prefix="/lta/"), client=None)
    assert storage._key("a/b") == "lta/a/b"
    assert S3Storage(S3Settings(endpoint_url="", bucket="b"), client=None)._key("a") == "a"


def test_tape_fails_clearly_for_every_operation() -> None:
    tape = TapeStorage("cologne-tl1")
    for attempt in (
        lambda: tape.stat("x"),
        lambda: tape.exists("x"),
        lambda: list(tape.list()),
        lambda: list(tape.read("x")),
        lambda: tape.write("x", [b"x"], checksum="0" * 32),
        lambda: tape.delete("x"),
    ):
        with pytest.raises(StorageNotDeployed, match="tape is not deployed"):
            attempt()


def test_the_hashing_counter_stops_a_stream_that_runs_long() -> None:
    counter = HashingCounter("0" * 32, 4)
    counter.update(b"1234")
    with pytest.raises(ChecksumMismatch, match="more than the expected 4 bytes"):
        counter.update(b"5")


def test_keys_are_clean_relative_paths() -> None:
    assert check_key("obs/2026/a.tar") == "obs/2026/a.tar"
    for bad in ["", "/a", "a/../b", "a//b", "a\x00b"]:
        with pytest.raises(StorageError, match="invalid object key"):
            check_key(bad)


def test_s3_without_boto3_is_a_clear_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from ccat_hpc.storage.s3_client import make_client

    real_import = builtins.__import__

    def no_boto3(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith(("boto3", "botocore")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    with pytest.raises(StorageError, match=r"pip install 'ccat-hpc\[s3\]'"):
        make_client(S3Settings(endpoint_url="http://x", bucket="b"), S3Credentials())
