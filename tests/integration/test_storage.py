"""The shared storage suite: every backend passes the same tests, on a folder and on real S3.

S3 is SeaweedFS from ``scripts/services.sh up`` (``CCAT_S3_*``), a server that checks
every part's MD5 and SHA-256, so the checksums the backend sends are really verified.
Every test works below its own random prefix.
"""

from __future__ import annotations

import os
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import xxhash

from ccat_hpc.storage.base import (
    ChecksumMismatch,
    ObjectNotFound,
    StorageBackend,
    StorageError,
)
from ccat_hpc.storage.posix import PARTIAL_PREFIX, PosixStorage
from tests.conftest import _require

MiB = 1024 * 1024


def s3_environment() -> dict[str, str]:
    names = ("CCAT_S3_ENDPOINT", "CCAT_S3_BUCKET")
    if not all(os.environ.get(name) for name in names):
        problem = "no S3 server: start it with scripts/services.sh up and eval its env"
        if _require("s3"):
            pytest.fail(problem)
        pytest.skip(problem)
    return dict(os.environ)


def make_s3(prefix: str, **overrides: object) -> StorageBackend:
    from ccat_hpc.storage.s3 import S3Settings, S3Storage
    from ccat_hpc.storage.s3_client import S3Credentials, make_client

    environ = s3_environment()
    fields: dict[str, object] = {
        "endpoint_url": environ["CCAT_S3_ENDPOINT"],
        "bucket": environ["CCAT_S3_BUCKET"],
        "prefix": prefix,
        "region": environ.get("CCAT_S3_REGION", ""),
        "part_size": 5 * MiB,
        "max_in_flight": 2,
    }
    fields.update(overrides)
    settings = S3Settings(**fields)  # type: ignore[arg-type]
    client = make_client(settings, S3Credentials.from_environment(environ))
    ensure_bucket(client, settings.bucket)
    return S3Storage(settings, client)


def ensure_bucket(client: object, bucket: str) -> None:
    names = {b["Name"] for b in client.list_buckets()["Buckets"]}  # type: ignore[attr-defined]
    if bucket not in names:
        client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]


@pytest.fixture(params=["posix", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageBackend]:
    if request.param == "posix":
        (tmp_path / "store").mkdir()
        yield PosixStorage(tmp_path / "store")
        return
    prefix = f"conformance/{uuid.uuid4().hex}"
    backend = make_s3(prefix)
    yield backend
    for item in list(backend.list()):
        backend.delete(item.key)


def digest(data: bytes) -> str:
    return str(xxhash.xxh3_128_hexdigest(data))


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def put(storage: StorageBackend, key: str, data: bytes, piece: int = MiB) -> None:
    storage.write(key, pieces(data, piece), checksum=digest(data), size=len(data))


def read_all(
    storage: StorageBackend, key: str, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join(storage.read(key, offset, length))


def test_a_written_object_reads_back_with_its_size_and_checksum(storage: StorageBackend) -> None:
    data = os.urandom(300_000)
    info = storage.write("obs/1/a.tar", pieces(data, 65536), checksum=digest(data), size=len(data))
    assert (info.key, info.size, info.checksum) == ("obs/1/a.tar", len(data), digest(data))
    stat = storage.stat("obs/1/a.tar")
    assert stat.size == len(data)
    assert stat.checksum == (digest(data) if storage.records_checksums else None)
    assert storage.exists("obs/1/a.tar")
    assert read_all(storage, "obs/1/a.tar") == data


def test_an_empty_object(storage: StorageBackend) -> None:
    put(storage, "empty", b"")
    assert storage.stat("empty").size == 0
    assert read_all(storage, "empty") == b""


def test_ranged_reads_give_exactly_the_range(storage: StorageBackend) -> None:
    data = os.urandom(100_000)
    put(storage, "r.bin", data)
    for offset, length in [(0, 1), (0, 100_000), (99_999, 1), (12_345, 54_321), (500, 0)]:
        assert read_all(storage, "r.bin", offset, length) == data[offset : offset + length]
    assert read_all(storage, "r.bin", 90_000) == data[90_000:]
    assert b"".join(storage.read("r.bin", 10, 50_000, chunk_size=4096)) == data[10:50_010]


@pytest.mark.parametrize(("offset", "length"), [(99_999, 2), (100_001, 0), (-1, 5), (0, -1)])
def test_a_range_outside_the_object_is_an_error_not_a_short_read(
    storage: StorageBackend, offset: int, length: int
) -> None:
    put(storage, "r.bin", os.urandom(100_000))
    with pytest.raises(StorageError):
        read_all(storage, "r.bin", offset, length)


def test_a_large_object_streams_in_many_parts_and_reads_back(storage: StorageBackend) -> None:
    data = os.urandom(12 * MiB + 12_345)  # three S3 parts of 5 MiB
    put(storage, "big/package.tar", data, piece=1_000_003)
    assert storage.stat("big/package.tar").size == len(data)
    assert read_all(storage, "big/package.tar") == data
    middle = 5 * MiB - 10
    assert read_all(storage, "big/package.tar", middle, 20) == data[middle : middle + 20]


def test_a_write_holds_at_most_a_few_pieces_in_memory(storage: StorageBackend) -> None:
    """Memory stays bounded by the piece and part sizes (S3: 5 MiB parts, 2 in flight)."""
    size = 120 * MiB
    block = os.urandom(MiB)
    expected = xxhash.xxh3_128()
    for _ in range(size // MiB):
        expected.update(block)
    tracemalloc.start()
    try:
        storage.write(
            "mem.bin",
            (block for _ in range(size // MiB)),
            checksum=expected.hexdigest(),
            size=size,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert storage.stat("mem.bin").size == size
    assert peak < 40 * MiB, f"peak {peak / MiB:.1f} MiB for a {size / MiB:.0f} MiB object"


def test_the_wrong_checksum_publishes_nothing(storage: StorageBackend) -> None:
    data = os.urandom(7 * MiB)
    with pytest.raises(ChecksumMismatch, match=r"not published|xxh3-128"):
        storage.write("bad.tar", pieces(data, MiB), checksum=digest(b"other"))
    assert not storage.exists("bad.tar")
    assert [item.key for item in storage.list()] == []


def test_the_wrong_size_publishes_nothing(storage: StorageBackend) -> None:
    data = os.urandom(1000)
    with pytest.raises(ChecksumMismatch):
        storage.write("short.tar", [data], checksum=digest(data), size=1001)
    with pytest.raises(ChecksumMismatch):
        storage.write("long.tar", [data], checksum=digest(data), size=999)
    assert [item.key for item in storage.list()] == []


def test_a_failed_write_leaves_the_older_object_as_it_was(storage: StorageBackend) -> None:
    old = os.urandom(2000)
    put(storage, "keep.tar", old)
    new = os.urandom(6 * MiB)
    with pytest.raises(ChecksumMismatch):
        storage.write("keep.tar", pieces(new, MiB), checksum=digest(b"not it"))
    assert read_all(storage, "keep.tar") == old
    assert storage.stat("keep.tar").size == len(old)


def test_a_source_that_breaks_mid_stream_publishes_nothing(storage: StorageBackend) -> None:
    def broken() -> Iterator[bytes]:
        for _ in range(8):
            yield os.urandom(MiB)
        raise OSError("the source disk went away")

    with pytest.raises(OSError, match="went away"):
        storage.write("broken.tar", broken(), checksum=digest(b"x"))
    assert not storage.exists("broken.tar")
    assert [item.key for item in storage.list()] == []


def test_overwriting_replaces_bytes_and_checksum(storage: StorageBackend) -> None:
    put(storage, "o.bin", b"first version")
    put(storage, "o.bin", b"second")
    assert read_all(storage, "o.bin") == b"second"
    if storage.records_checksums:
        assert storage.stat("o.bin").checksum == digest(b"second")


def test_listing_by_prefix_in_key_order(storage: StorageBackend) -> None:
    for key in ["b/2", "a/1", "a/b/3", "ab/4", "a/bc/5"]:
        put(storage, key, key.encode())
    assert [i.key for i in storage.list()] == ["a/1", "a/b/3", "a/bc/5", "ab/4", "b/2"]
    assert [i.key for i in storage.list("a/")] == ["a/1", "a/b/3", "a/bc/5"]
    assert [i.key for i in storage.list("a/b")] == ["a/b/3", "a/bc/5"]
    assert [i.key for i in storage.list("a/b/")] == ["a/b/3"]
    assert [i.key for i in storage.list("zzz")] == []
    assert {i.key: i.size for i in storage.list("b")} == {"b/2": 3}


def test_delete(storage: StorageBackend) -> None:
    put(storage, "d/x", b"x")
    storage.delete("d/x")
    assert not storage.exists("d/x")
    with pytest.raises(ObjectNotFound):
        storage.delete("d/x")


def test_a_missing_object_is_not_found_for_every_reader(storage: StorageBackend) -> None:
    with pytest.raises(ObjectNotFound):
        storage.stat("nope/x")
    with pytest.raises(ObjectNotFound):
        read_all(storage, "nope/x")
    assert not storage.exists("nope/x")


@pytest.mark.parametrize("key", ["", "../x", "/abs", "a//b", "a/./b", "a/../b", "a\nb", "a\\b"])
def test_a_key_that_could_leave_the_root_is_refused(storage: StorageBackend, key: str) -> None:
    for attempt in (
        lambda: storage.stat(key),
        lambda: read_all(storage, key),
        lambda: storage.write(key, [b"x"], checksum=digest(b"x")),
        lambda: storage.delete(key),
    ):
        with pytest.raises(StorageError, match="invalid object key"):
            attempt()


# -- what only one backend has ---------------------------------------------------------


def test_posix_never_writes_through_a_linked_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "store"
    root.mkdir()
    (root / "linked").symlink_to(outside)
    storage = PosixStorage(root)
    with pytest.raises(StorageError, match="link or not a folder"):
        storage.write("linked/x", [b"x"], checksum=digest(b"x"))
    assert list(outside.iterdir()) == []
    (outside / "secret").write_bytes(b"s")
    with pytest.raises(StorageError):
        read_all(storage, "linked/secret")
    (root / "file-link").symlink_to(outside / "secret")
    with pytest.raises(StorageError):
        read_all(storage, "file-link")
    assert [item.key for item in storage.list()] == []


def test_posix_partial_files_are_hidden_and_removed(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    storage = PosixStorage(tmp_path / "store")
    put(storage, "a/kept", b"kept")
    with pytest.raises(ChecksumMismatch):
        storage.write("a/bad", [b"bytes"], checksum=digest(b"other"))
    assert sorted(p.name for p in (tmp_path / "store" / "a").iterdir()) == ["kept"]
    (tmp_path / "store" / "a" / f"{PARTIAL_PREFIX}123-stale").write_bytes(b"left by a crash")
    assert [item.key for item in storage.list()] == ["a/kept"]


def test_posix_checksum_is_an_extended_attribute(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    storage = PosixStorage(tmp_path / "store")
    put(storage, "x", b"payload")
    assert (
        os.getxattr(tmp_path / "store" / "x", "user.ccat.xxh3_128") == digest(b"payload").encode()
    )


def test_posix_never_creates_its_root(tmp_path: Path) -> None:
    storage = PosixStorage(tmp_path / "not-mounted")
    for attempt in (
        lambda: storage.write("x", [b"x"], checksum=digest(b"x")),
        lambda: storage.stat("x"),
        lambda: storage.exists("x"),
        lambda: list(storage.list()),
    ):
        with pytest.raises(StorageError, match="storage root"):
            attempt()
    assert not (tmp_path / "not-mounted").exists()


def test_posix_removes_a_killed_writers_partial_but_never_a_live_one(tmp_path: Path) -> None:
    import fcntl

    (tmp_path / "store" / "a").mkdir(parents=True)
    storage = PosixStorage(tmp_path / "store")
    folder = tmp_path / "store" / "a"
    dead = folder / f"{PARTIAL_PREFIX}{'0' * 16}-x.tar"
    dead.write_bytes(b"left by a killed upload")
    live = folder / f"{PARTIAL_PREFIX}{'1' * 16}-x.tar"
    live.write_bytes(b"being written")
    other = folder / f"{PARTIAL_PREFIX}{'2' * 16}-y.tar"
    other.write_bytes(b"another object's")
    with live.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        put(storage, "a/x.tar", b"the object")
    assert sorted(p.name for p in folder.iterdir()) == sorted(["x.tar", live.name, other.name])
