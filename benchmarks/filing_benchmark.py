"""Filing throughput: one manifest of N files (default 100,000) into ops-db.

Run by hand:

    .venv/bin/python benchmarks/filing_benchmark.py [--files 100000]
        [--db sqlite] [--db postgresql://postgres@127.0.0.1:55432/postgres]

For each database it creates a fresh ops-db (a new SQLite file, or a new PostgreSQL
database on the server the URL names), loads the shipped sites and catalog, and
times ``ccat-hpc file`` of the same manifest, split into reading + validating the
JSON, checking the files on disk, and writing the rows. As the baseline, in the same
run, ``find ROOT -type f -printf '%s %P\\n'`` walks the same tree (the filesystem
cost alone, no database). Prints files/s and the ratio to the baseline.
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

from sqlalchemy import create_engine, text

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db import migrate
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.pipeline.filing import file_manifest, resolve_references
from ccat_hpc.pipeline.manifest import read_manifest
from ccat_hpc.pipeline.source_check import check_source_files
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation

LOCATION = "chile-source-primecam"


def fresh_database(spec: str, workdir: Path) -> str:
    if spec == "sqlite":
        return f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.sqlite'}"
    admin = create_engine(spec, isolation_level="AUTOCOMMIT")
    name = f"ccat_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return spec.rsplit("/", 1)[0] + "/" + name


def drop_database(spec: str, url: str) -> None:
    if spec == "sqlite":
        return
    admin = create_engine(spec, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)"))
    admin.dispose()


def timed(label: str, results: dict[str, float], func, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = func(*args)
    results[label] = time.perf_counter() - start
    return value


def bench_database(spec: str, manifest_path: Path, workdir: Path) -> dict[str, float]:
    url = fresh_database(spec.replace("postgresql://", "postgresql+psycopg://"), workdir)
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_site_configs(session, read_site_configs(shipped_site_configs()))
        load_catalog_file(session, example_catalog_path())
    results: dict[str, float] = {}
    start = time.perf_counter()
    manifest, digest = timed("read+validate", results, read_manifest, manifest_path)
    with transaction(factory) as session:
        refs = resolve_references(session, manifest)
        timed("disk check", results, check_source_files, Path(refs.location.path), manifest.files)
    with transaction(factory) as session:
        result = timed("file (all)", results, file_manifest, session, manifest, digest, "bench")
        commit_start = time.perf_counter()
    results["commit"] = time.perf_counter() - commit_start
    results["total"] = time.perf_counter() - start - results["disk check"]
    assert result.created and result.file_count == len(manifest.files)
    engine.dispose()
    drop_database(spec.replace("postgresql://", "postgresql+psycopg://"), url)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--file-size", type=int, default=64)
    parser.add_argument("--db", action="append", help="sqlite or a PostgreSQL server URL")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    databases = args.db or ["sqlite"] + (
        [os.environ["CCAT_HPC_TEST_PG_URL"]] if os.environ.get("CCAT_HPC_TEST_PG_URL") else []
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ccat-filing-bench-"))
    os.environ["CCAT_DATA_ROOT"] = str(workdir / "data")
    os.environ.setdefault("CCAT_ARCHIVE_STORAGE", "disk")
    root = workdir / "data" / LOCATION
    root.mkdir(parents=True, exist_ok=True)
    print(f"generating {args.files} files of {args.file_size} bytes under {root} ...")
    spec = SyntheticObservation(
        "PrimeCam", "280GHz", "ECDFS-deep-001", LOCATION, args.files, args.file_size
    )
    manifest_path = drop_manifest(write_observation(spec, root), workdir / "inbox", "bench")
    subprocess.run(["sync"], check=True)

    start = time.perf_counter()
    subprocess.run(
        ["find", str(root), "-type", "f", "-printf", "%s %P\n"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    baseline = time.perf_counter() - start
    print(
        f"\nbaseline  find -printf over the same tree: {baseline:6.2f} s "
        f"({args.files / baseline:,.0f} files/s)"
    )
    for database in databases:
        kind = "sqlite" if database == "sqlite" else "postgresql"
        results = bench_database(database, manifest_path, workdir)
        rate = args.files / results["total"]
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in results.items() if k != "total")
        print(
            f"{kind:<10} ccat-hpc file: {results['total']:6.2f} s ({rate:,.0f} files/s, "
            f"{results['total'] / baseline:.1f}x the find baseline)\n           {parts}"
        )
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
