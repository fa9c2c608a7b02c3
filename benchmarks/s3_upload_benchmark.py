"""S3 upload throughput of the archive step's storage backend, beside boto3's upload_file.

Run by hand with the S3 server of the test services (or any S3 endpoint):

    scripts/services.sh up && eval "$(scripts/services.sh env)"
    .venv/bin/python benchmarks/s3_upload_benchmark.py [--files 4] [--mib 256]
        [--part-mib 8] [--parallel 8]

Writes ``--files`` files of ``--mib`` MiB, then uploads each (page cache warm) with
:class:`ccat_hpc.storage.s3.S3Storage` (what the archive step does: every part's SHA-256 checked
by the server, xxh3-128 of the whole computed on the way and stored as metadata, a
HEAD check after) and with boto3's ``upload_file`` (its default
transfer manager: 8 MiB parts, 10 threads, no checksum of the whole). Prints MB/s
for both and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import xxhash

from ccat_hpc.storage.s3 import S3Settings, S3Storage
from ccat_hpc.storage.s3_client import S3Credentials, make_client

MiB = 1024 * 1024


def pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while piece := handle.read(8 * MiB):
            yield piece


def checksum(path: Path) -> str:
    digest = xxhash.xxh3_128()
    for piece in pieces(path):
        digest.update(piece)
    return str(digest.hexdigest())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    environ = os.environ
    prefix = f"benchmarks/{uuid.uuid4().hex}"
    settings = S3Settings(
        endpoint_url=environ["CCAT_S3_ENDPOINT"],
        bucket=environ["CCAT_S3_BUCKET"],
        prefix=prefix,
        region=environ.get("CCAT_S3_REGION", ""),
        part_size=args.part_mib * MiB,
        max_in_flight=args.parallel,
    )
    client = make_client(settings, S3Credentials.from_environment(environ))
    storage = S3Storage(settings, client)
    work = Path(tempfile.mkdtemp(prefix="ccat-s3-bench-"))
    try:
        files = []
        for number in range(args.files):
            path = work / f"package-{number}.tar"
            with path.open("wb") as handle:
                for _ in range(args.mib):
                    handle.write(os.urandom(MiB))
            files.append((path, checksum(path)))
        total = args.files * args.mib * MiB
        started = time.monotonic()
        for path, digest in files:
            storage.write(
                f"ours/{path.name}", pieces(path), checksum=digest, size=path.stat().st_size
            )
        ours = time.monotonic() - started
        started = time.monotonic()
        for path, _ in files:
            client.upload_file(str(path), settings.bucket, f"{prefix}/boto3/{path.name}")
        theirs = time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for item in list(storage.list()):
            storage.delete(item.key)
    print(f"{args.files} × {args.mib} MiB to {settings.endpoint_url}")
    print(
        f"  archive backend (S3Storage.write): {ours:6.2f} s, {total / ours / 1e6:6.0f} MB/s "
        f"({args.part_mib} MiB parts, {args.parallel} in flight, every part's SHA-256 "
        "checked by the server, xxh3-128 of the whole)"
    )
    print(f"  boto3 upload_file:                 {theirs:6.2f} s, {total / theirs / 1e6:6.0f} MB/s")
    print(f"ratio archive backend / upload_file: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
