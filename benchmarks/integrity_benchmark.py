"""The integrity paths of the scrub and the campaigns on S3, beside the standard tools.

Run by hand with the S3 server of the test services (or any S3 endpoint):

    scripts/services.sh up && eval "$(scripts/services.sh env)"
    .venv/bin/python benchmarks/integrity_benchmark.py [--files 4] [--mib 512]

Uploads ``--files`` packages of ``--mib`` MiB of random bytes, then, in one run:

1. **re-verify / scrub**: every byte of each object read back and hashed against the
   package's size and xxh3-128 (:func:`ccat_hpc.pipeline.archive_integrity.read_in_full`),
   beside one GET streamed into ``xxh128sum`` (the same bytes, the same hash, by
   hand);
2. **restore / re-archive**: each object streamed from S3 into a folder store, checked
   on the way in and published only when it hashes right (what a repair does), beside
   boto3's ``download_file`` to a file followed by ``xxh128sum`` of the file.

Prints seconds and GB/s of each and the ratios (ours / by hand: below 1 is faster).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import xxhash

from ccat_hpc.db.states import PhysicalCopyState
from ccat_hpc.pipeline.archive_integrity import PackageCopy, read_in_full
from ccat_hpc.storage.posix import PosixStorage
from ccat_hpc.storage.s3 import S3Settings, S3Storage
from ccat_hpc.storage.s3_client import S3Credentials, make_client

MiB = 1024 * 1024


def upload(storage: S3Storage, key: str, mib: int) -> PackageCopy:
    data = [os.urandom(MiB) for _ in range(mib)]
    digest = xxhash.xxh3_128()
    for piece in data:
        digest.update(piece)
    checksum = str(digest.hexdigest())
    storage.write(key, iter(data), checksum=checksum, size=mib * MiB)
    return PackageCopy(0, 0, key, key, mib * MiB, checksum, 0, "s3", PhysicalCopyState.VERIFIED)


def by_hand_pipe(client: object, bucket: str, full_key: str) -> str:
    """One GET streamed into xxh128sum's stdin (what ``aws s3 cp s3://… - | xxh128sum``
    does; boto3's download_fileobj needs a seekable target)."""
    hasher = subprocess.Popen(["xxh128sum"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert hasher.stdin is not None
    body = client.get_object(Bucket=bucket, Key=full_key)["Body"]  # type: ignore[attr-defined]
    for piece in body.iter_chunks(8 * MiB):
        hasher.stdin.write(piece)
    hasher.stdin.close()
    out = hasher.stdout.read().decode() if hasher.stdout else ""
    hasher.wait()
    return out.split()[0]


def by_hand_file(client: object, bucket: str, full_key: str, path: Path) -> str:
    client.download_file(bucket, full_key, str(path))  # type: ignore[attr-defined]
    out = subprocess.run(["xxh128sum", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def rate(size: int, seconds: float) -> str:
    return f"{seconds:6.2f} s  {size / seconds / 1e9:5.2f} GB/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mib", type=int, default=512)
    args = parser.parse_args()
    environ = os.environ
    prefix = f"benchmarks/{uuid.uuid4().hex}"
    settings = S3Settings(
        endpoint_url=environ["CCAT_S3_ENDPOINT"],
        bucket=environ["CCAT_S3_BUCKET"],
        prefix=prefix,
        region=environ.get("CCAT_S3_REGION", ""),
    )
    client = make_client(settings, S3Credentials.from_environment(environ))
    storage = S3Storage(settings, client)
    work = Path(tempfile.mkdtemp(prefix="ccat-integrity-bench-"))
    try:
        packages = [upload(storage, f"rdp/p{n}.tar", args.mib) for n in range(args.files)]
        total = args.files * args.mib * MiB

        started = time.monotonic()
        for copy in packages:
            assert read_in_full(storage, copy).state is PhysicalCopyState.VERIFIED
        ours_verify = time.monotonic() - started
        started = time.monotonic()
        for copy in packages:
            assert by_hand_pipe(client, settings.bucket, f"{prefix}/{copy.key}") == copy.checksum
        hand_verify = time.monotonic() - started

        (work / "restored").mkdir()
        folder = PosixStorage(work / "restored")
        started = time.monotonic()
        for copy in packages:
            folder.write(copy.key, storage.read(copy.key), checksum=copy.checksum, size=copy.size)
        ours_restore = time.monotonic() - started
        started = time.monotonic()
        for number, copy in enumerate(packages):
            path = work / f"by-hand-{number}.tar"
            assert by_hand_file(client, settings.bucket, f"{prefix}/{copy.key}", path) == (
                copy.checksum
            )
        hand_restore = time.monotonic() - started

        print(f"{args.files} packages of {args.mib} MiB on {settings.endpoint_url}")
        print(f"re-verify (read_in_full)            {rate(total, ours_verify)}")
        print(f"by hand: GET | xxh128sum            {rate(total, hand_verify)}")
        print(f"  ratio ours / by hand: {ours_verify / hand_verify:.2f}")
        print(f"restore S3 -> folder, checked         {rate(total, ours_restore)}")
        print(f"by hand: download_file + xxh128sum    {rate(total, hand_restore)}")
        print(f"  ratio ours / by hand: {ours_restore / hand_restore:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for copy in locals().get("packages", []):
            storage.delete(copy.key)


if __name__ == "__main__":
    main()
