"""End-to-end throughput from filed to archived, beside the same bytes moved by hand.

Run by hand (S3 runs need the services: scripts/services.sh up, then
``eval "$(scripts/services.sh env)"``):

    .venv/bin/python benchmarks/pipeline_benchmark.py [--gib 2] [--large 4] [--small 2000]
        [--archive disk|s3] [--executor local|slurm]

Generates one observation per instrument module (a few large files and many small
ones, ``--gib`` in all), files it into a fresh SQLite ops-db, and runs the pipeline
steps one after the other on the executor, each with ``--wait``: checksum, package,
bundle, transfer (method ``copy``), archive (a folder, or the S3 bucket of
``CCAT_S3_*``). Then, page cache as warm, the hand-made chain on the same files:
``tar -cf`` of each module's files, ``xxh128sum`` of each tar, ``cp`` of each tar to
another folder, and boto3's ``upload_file`` of each tar (``cp`` to a folder for a
folder archive), each followed by a timed ``sync`` (the pipeline fsyncs what it
writes). Prints the seconds per step, the totals, and the ratio pipeline / hand-made,
without and with the syncs (the pipeline verifies every byte at every hop; the hand
chain checks none).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db import migrate
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation

MODULES = ("280GHz", "350GHz")
STEPS = ("checksum", "package", "bundle", "transfer", "archive")
FOLDERS = ("chile-source-primecam", "chile-buffer-01", "cologne-buffer-01", "cologne-archive")
GIB = 1024**3


def environment(work: Path, archive: str) -> dict[str, str]:
    env = dict(os.environ)
    env |= {
        "CCAT_DATA_ROOT": str(work / "data"),
        "CCAT_ARCHIVE_STORAGE": archive,
        "CCAT_BUNDLE_MAX_WAIT_MINUTES": "0",
        "CCAT_TRANSFER_METHOD": "copy",
        "CCAT_HPC_DB": f"sqlite:///{work / 'ops.sqlite'}",
        "CCAT_HPC_JOBS_DIR": str(work / "jobs"),
        "CCAT_HPC_LOCAL_JOBS": str(work / "local-jobs"),
    }
    if archive == "s3":
        env["CCAT_S3_PREFIX"] = f"benchmarks/{uuid.uuid4().hex}"
    return env


def write_data(work: Path, env: dict[str, str], gib: float, large: int, small: int) -> None:
    """One observation per module: ``large`` big files and ``small`` 64 KiB files each."""
    os.environ.update(env)
    engine = make_engine(env["CCAT_HPC_DB"])
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_site_configs(session, read_site_configs(shipped_site_configs()))
    with transaction(factory) as session:
        load_catalog_file(session, example_catalog_path())
    engine.dispose()
    for name in FOLDERS:
        (work / "data" / name).mkdir(parents=True, exist_ok=True)
    root = work / "data" / FOLDERS[0]
    per_module = int(gib * GIB / len(MODULES))
    small_size = 64 * 1024
    large_size = max(1, (per_module - small * small_size) // max(large, 1))
    for module in MODULES:
        for count, size in ((large, large_size), (small, small_size)):
            spec = SyntheticObservation(
                "PrimeCam", module, "ECDFS-deep-001", FOLDERS[0], count, size
            )
            drop_manifest(write_observation(spec, root), work / "inbox")


def ccat(env: dict[str, str], *args: str) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "ccat_hpc", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.monotonic() - started


def run_pipeline(env: dict[str, str], work: Path, executor: str) -> dict[str, float]:
    times = {"file": ccat(env, "file", *map(str, sorted((work / "inbox").glob("*.json"))))}
    for step in STEPS:
        times[step] = ccat(env, "step", step, "--executor", executor, "--wait")
    return times


def run_by_hand(work: Path, archive: str, env: dict[str, str]) -> dict[str, float]:
    root = work / "data" / FOLDERS[0]
    hand = work / "hand"
    (hand / "tars").mkdir(parents=True)
    (hand / "copied").mkdir()
    times: dict[str, float] = {}
    started = time.monotonic()
    tars = []
    for module in MODULES:
        members = sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and f"/{module}/" in f"/{p}"
        )
        tar = hand / "tars" / f"{module}.tar"
        listing = hand / f"{module}.list"
        listing.write_text("\n".join(members) + "\n")
        subprocess.run(["tar", "-cf", str(tar), "-C", str(root), "-T", str(listing)], check=True)
        tars.append(tar)
    times["tar"] = time.monotonic() - started
    times["sync"] = sync()
    started = time.monotonic()
    subprocess.run(["xxh128sum", *map(str, tars)], check=True, stdout=subprocess.DEVNULL)
    times["xxh128sum"] = time.monotonic() - started
    started = time.monotonic()
    subprocess.run(["cp", *map(str, tars), str(hand / "copied")], check=True)
    times["cp"] = time.monotonic() - started
    times["sync"] += sync()
    started = time.monotonic()
    upload(tars, archive, env, hand)
    times["upload"] = time.monotonic() - started
    times["sync"] += sync()
    return times


def sync() -> float:
    """Seconds to write what the last command left in the page cache (the pipeline
    fsyncs what it writes; the hand-made chain does not, so its flush is timed apart)."""
    started = time.monotonic()
    os.sync()
    return time.monotonic() - started


def upload(tars: list[Path], archive: str, env: dict[str, str], hand: Path) -> None:
    if archive == "disk":
        (hand / "archive").mkdir()
        subprocess.run(["cp", *map(str, tars), str(hand / "archive")], check=True)
        return
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=env["CCAT_S3_ENDPOINT"],
        aws_access_key_id=env.get("CCAT_S3_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("CCAT_S3_SECRET_ACCESS_KEY"),
        region_name=env.get("CCAT_S3_REGION") or "us-east-1",
    )
    for tar in tars:
        client.upload_file(
            str(tar), env["CCAT_S3_BUCKET"], f"{env['CCAT_S3_PREFIX']}-hand/{tar.name}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--large", type=int, default=4, help="large files per module")
    parser.add_argument("--small", type=int, default=2000, help="64 KiB files per module")
    parser.add_argument("--archive", choices=("disk", "s3"), default="disk")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccat-pipeline-bench-", dir=os.environ.get("TMPDIR")))
    try:
        env = environment(work, args.archive)
        write_data(work, env, args.gib, args.large, args.small)
        pipeline = run_pipeline(env, work, args.executor)
        by_hand = run_by_hand(work, args.archive, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total_bytes = args.gib * GIB
    steps = sum(t for name, t in pipeline.items() if name != "file")
    hand_total = sum(t for name, t in by_hand.items() if name != "sync")
    hand_synced = hand_total + by_hand["sync"]
    print(
        f"data: {args.gib:g} GiB, {len(MODULES)} modules × ({args.large} large + "
        f"{args.small} small files); archive {args.archive}, executor {args.executor}"
    )
    for name, seconds in pipeline.items():
        print(f"  pipeline {name:<9} {seconds:7.2f} s")
    for name, seconds in by_hand.items():
        print(f"  by hand  {name:<9} {seconds:7.2f} s")
    print(f"pipeline (checksum → archive): {steps:.2f} s, {total_bytes / steps / 1e6:.0f} MB/s")
    print(
        f"by hand (tar + xxh128sum + cp + upload): {hand_total:.2f} s, "
        f"{total_bytes / hand_total / 1e6:.0f} MB/s"
    )
    print(f"by hand, written to disk (+ sync): {hand_synced:.2f} s")
    print(
        f"ratio pipeline / by hand: {steps / hand_total:.2f}x "
        f"({steps / hand_synced:.2f}x against the chain written to disk)"
    )


if __name__ == "__main__":
    main()
