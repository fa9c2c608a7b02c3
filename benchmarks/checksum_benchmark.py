"""Checksum job array throughput, and the scheduling overhead of an array, per executor.

Run by hand (the Slurm runs need the cluster: scripts/services.sh up, then
``eval "$(scripts/services.sh env)"``):

    .venv/bin/python benchmarks/checksum_benchmark.py [--files 2000] [--file-size 1048576]
        [--tasks 8] [--executors local,slurm] [--array 100]

Creates a SQLite ops-db with the shipped sites and catalog, writes one synthetic
observation of N files (no checksums in its manifest) and files it. Then, cache warm,
in the same run: ``ccat-hpc checksum --executor E --wait`` for each executor (states
reset between runs) beside ``find ROOT -type f -print0 | xargs -0 -P2 xxh128sum``.
Prints GB/s and files/s. Finally it submits a no-op array of ``--array`` tasks to each
executor with --wait and prints the wall time per task (scheduling overhead).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db import migrate
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.pipeline.filing import file_manifest
from ccat_hpc.pipeline.manifest import read_manifest
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation

LOCATION = "chile-source-primecam"
GB = 1e9


def prepare(work: Path, files: int, file_size: int) -> str:
    os.environ["CCAT_DATA_ROOT"] = str(work / "data")
    url = f"sqlite:///{work / 'ops.sqlite'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_site_configs(session, read_site_configs(shipped_site_configs()))
    with transaction(factory) as session:
        load_catalog_file(session, example_catalog_path())
    spec = SyntheticObservation(
        "PrimeCam", "280GHz", "ECDFS-deep-001", LOCATION, files, file_size, with_checksums=False
    )
    root = work / "data" / LOCATION
    root.mkdir(parents=True)
    manifest = drop_manifest(write_observation(spec, root), work / "inbox")
    with transaction(factory) as session:
        file_manifest(session, *read_manifest(manifest))
    engine.dispose()
    return url


def reset(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE raw_data_file SET state = 'filed', checksum = NULL"))
        connection.execute(text("UPDATE physical_copy SET state = 'present', verified_at = NULL"))
    engine.dispose()


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--file-size", type=int, default=1024 * 1024)
    parser.add_argument("--tasks", type=int, default=8, help="checksum tasks to split into")
    parser.add_argument("--executors", default="local,slurm")
    parser.add_argument("--array", type=int, default=100, help="tasks of the no-op array")
    args = parser.parse_args()
    executors = args.executors.split(",")
    if "slurm" in executors and not os.environ.get("SLURM_CONF") and shutil.which("sbatch") is None:
        sys.exit("no Slurm: run scripts/services.sh up and eval its env, or --executors local")
    work = Path(tempfile.mkdtemp(prefix="ccat-checksum-bench-"))
    total = args.files * args.file_size
    print(f"{args.files} files, {total / GB:.2f} GB in {work} ...")
    url = prepare(work, args.files, args.file_size)
    root = work / "data" / LOCATION
    ccat = [sys.executable, "-m", "ccat_hpc", "--db", url]
    env = dict(os.environ, CCAT_HPC_JOBS_DIR=str(work / "jobs"))
    env["CCAT_HPC_LOCAL_JOBS"] = str(work / "local-jobs")
    per_task = -(-total // args.tasks)
    find = "find . -type f -print0 | xargs -0 -P2 xxh128sum > /dev/null"
    timed(["bash", "-c", find], env, root)  # warm the cache
    results = {"find|xargs -P2 xxh128sum": timed(["bash", "-c", find], env, root)}
    for name in executors:
        reset(url)
        command = [*ccat, "checksum", "--executor", name, "--wait"]
        results[f"checksum ({name})"] = timed(
            [*command, "--bytes-per-task", str(per_task)], env, work
        )
    print(f"\nchecksum of {args.files} files in {args.tasks} tasks (cache warm):")
    for name, seconds in results.items():
        print(
            f"  {name:<26} {seconds:6.2f} s  {total / seconds / GB:5.2f} GB/s  "
            f"{args.files / seconds:8.0f} files/s"
        )
    print(f"\nno-op array of {args.array} tasks (submit to done, --wait):")
    for name in executors:
        command = [*ccat, "job", "submit", "noop", "--tasks", str(args.array), "--executor", name]
        seconds = timed([*command, "--wait"], env, work)
        print(f"  {name:<8} {seconds:6.2f} s  {seconds / args.array * 1000:6.0f} ms per task")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
