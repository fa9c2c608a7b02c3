"""Staging throughput from the archive to PROCESSING, beside a plain download + tar -x +
xxh128sum of the same bytes; and one file of a large package by ranged reads, beside
downloading the whole package.

Run by hand, with the S3 server up (scripts/services.sh up, then
``eval "$(scripts/services.sh env)"``):

    .venv/bin/python benchmarks/staging_benchmark.py [--gib 2] [--large 4]

Files one observation per instrument module (``--large`` files each, ``--gib`` in all)
into a fresh SQLite ops-db and runs the pipeline into the S3 archive (as
pipeline_benchmark.py does). Then, in one run:

1. a staging request for the whole observation, staged by the scheduler's stage job
   (local executor): every file read from S3, checked against its xxh3-128, written to
   the PROCESSING folder and linked into the request's folder;
2. by hand, the same bytes: boto3 ``download_file`` of every package, ``tar -xf`` and
   ``xxh128sum`` of the files;
3. after a release and a cleanup, a request for one file of a package, and by hand the
   download of that whole package.

Prints seconds, GB/s, the bytes read from the archive, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline_benchmark import GIB, environment, run_pipeline, write_data  # type: ignore[import-not-found]

PROCESSING = "cologne-processing-ramses"


def ccat(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "ccat_hpc", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def stage(env: dict[str, str], *selection: str) -> tuple[float, int]:
    """Seconds from the request to READY, and the bytes the stage task read."""
    started = time.monotonic()
    staging_id = ccat(env, "stage", "request", "--user", "bench", "--id-only", *selection).strip()
    ccat(env, "scheduler", "run", "--until-idle", "--step", "stage", "--interval", "0.2")
    ccat(env, "stage", "wait", staging_id, "--timeout", "0")
    seconds = time.monotonic() - started
    database = sqlite3.connect(env["CCAT_HPC_DB"].removeprefix("sqlite:///"))
    rows = database.execute(
        "SELECT job_task.result FROM job_task JOIN job_batch ON job_batch.id = job_task.batch_id"
        " WHERE job_batch.kind = 'stage' ORDER BY job_task.id DESC LIMIT 1"
    ).fetchall()
    database.close()
    return seconds, int(json.loads(rows[0][0])["bytes_read"])


def s3_client(env: dict[str, str]):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["CCAT_S3_ENDPOINT"],
        aws_access_key_id=env.get("CCAT_S3_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("CCAT_S3_SECRET_ACCESS_KEY"),
        region_name=env.get("CCAT_S3_REGION") or "us-east-1",
    )


def by_hand(env: dict[str, str], work: Path) -> tuple[float, list[tuple[str, int]]]:
    """Download every package, tar -x it, xxh128sum the files: seconds, (key, size)s."""
    client = s3_client(env)
    bucket, prefix = env["CCAT_S3_BUCKET"], env["CCAT_S3_PREFIX"]
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/rdp/")["Contents"]
    objects = [(o["Key"], int(o["Size"])) for o in listed]
    out = work / "hand"
    out.mkdir()
    started = time.monotonic()
    for number, (key, _) in enumerate(objects):
        tar = out / f"{number}.tar"
        client.download_file(bucket, key, str(tar))
        folder = out / str(number)
        folder.mkdir()
        subprocess.run(["tar", "-xf", str(tar), "-C", str(folder)], check=True)
        files = [str(p) for p in folder.rglob("*") if p.is_file()]
        subprocess.run(["xxh128sum", *files], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started, objects


def download_one(env: dict[str, str], work: Path, key: str) -> float:
    started = time.monotonic()
    s3_client(env).download_file(env["CCAT_S3_BUCKET"], key, str(work / "one.tar"))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--large", type=int, default=4, help="files per module")
    args = parser.parse_args()
    if not os.environ.get("CCAT_S3_ENDPOINT"):
        sys.exit('no S3 server: scripts/services.sh up, then eval "$(scripts/services.sh env)"')
    work = Path(tempfile.mkdtemp(prefix="ccat-staging-bench-", dir=os.environ.get("TMPDIR")))
    try:
        env = environment(work, "s3")
        write_data(work, env, args.gib, args.large, 1)  # and one small file per module
        (work / "data" / PROCESSING).mkdir()
        run_pipeline(env, work, "local")
        whole, whole_read = stage(env, "--obs-unit", "ECDFS-deep-001")
        hand, objects = by_hand(env, work)
        ccat(env, "stage", "release", "1")
        ccat(env, "cleanup", "run", "--location", PROCESSING)
        one, one_read = stage(env, "--obs-unit", "ECDFS-deep-001", "--files", "*280GHz*det_000001*")
        key, package_size = max(objects, key=lambda item: item[1])
        whole_package = download_one(env, work, key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = sum(size for _, size in objects)
    print(f"data: {args.gib:g} GiB in {len(objects)} packages, {args.large} files per module")
    print(
        f"stage the observation: {whole:.2f} s, {total / whole / 1e9:.2f} GB/s "
        f"({whole_read / 1e6:.0f} MB read from S3, checksums verified)"
    )
    print(
        f"by hand (boto3 download + tar -x + xxh128sum): {hand:.2f} s, "
        f"{total / hand / 1e9:.2f} GB/s"
    )
    print(f"ratio staging / by hand: {whole / hand:.2f}x")
    file_size = int(args.gib * GIB / 2 / args.large)
    print(
        f"stage one {file_size / 1e6:.0f} MB file of a {package_size / 1e6:.0f} MB package: "
        f"{one:.2f} s, {one_read / 1e6:.0f} MB read from S3"
    )
    print(
        f"download that whole package: {whole_package:.2f} s, {package_size / 1e6:.0f} MB "
        f"({package_size / max(one_read, 1):.1f}x the bytes)"
    )


if __name__ == "__main__":
    main()
