"""The REST API under load, and filing through it, on PostgreSQL.

Run by hand (PostgreSQL from ``scripts/services.sh up``, then
``eval "$(scripts/services.sh env)"``; wrk from Debian's ``wrk`` package):

    .venv/bin/python benchmarks/api_benchmark.py [--files 1000000] [--seconds 10]
        [--connections 16] [--filing-files 10000] [--reuse] [--keep]

1. **Reads.** Fills its own database with ``--files`` archived files and everything
   they leave behind (``tick_history.py``: packages, bundles, transfers, every copy,
   checksum checks), starts ``ccat-hpc api serve`` (no rate limit) and makes one
   operator's token. Then wrk, on loopback, asks each endpoint for ``--seconds`` with
   ``--connections`` connections: ``/health`` (no ops-db: what the framework and the
   server cost alone), one execution's files with the locations of their copies
   (``/api/v1/files?execution=…``), one file with every copy and its checks
   (``/api/v1/files/{id}``), one file's chain of custody (``/api/v1/files/{id}/trace``)
   and the status summary (``/api/v1/status``). Prints requests per second and the
   latency percentiles wrk reports (p50, p99).
2. **Filing.** Writes two observations of ``--filing-files`` files each (same shape,
   other files) and files one with ``ccat-hpc file`` (a process, as an instrument's
   script runs it) and the other through the API (``POST /api/v1/observations`` from
   this process), into the same ops-db; prints files per second of each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from scheduler_tick_benchmark import Results, database_url, prepare, run_admin, say
from sqlalchemy import text

from ccat_hpc.access.tokens import add_user, create_token
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation

CCAT_BIN = str(Path(sys.executable).with_name("ccat-hpc"))
SERVE = [CCAT_BIN, "api", "serve", "--rate-limit", "0"]


def wrk(url: str, token: str, seconds: int, connections: int) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) of wrk against one URL."""
    done = subprocess.run(
        [
            "wrk",
            "--latency",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = re.search(r"Socket errors: .*", out)
    if errors or failed:
        sys.exit(f"{url}: error answers or socket errors\n{out}")
    shown = {"rps": rate}
    for label in ("50%", "99%"):
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert found, out
        value, unit = float(found.group(1)), found.group(2)
        shown[label] = value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return shown


def serve(db_url: str, port: int, log: Path, workers: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [*SERVE, "--db", db_url, "--port", str(port), "--workers", str(workers)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the API did not start:\n{log.read_text()}")
            time.sleep(0.2)


def samples(url: str) -> tuple[str, int]:
    """An execution id and the id of one of its files."""
    engine = make_engine(url)
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT executed_obs_unit_id, id FROM raw_data_file "
                "WHERE id = (SELECT max(id) / 2 FROM raw_data_file)"
            )
        ).one()
    engine.dispose()
    return str(row[0]), int(row[1])


def operator_token(url: str) -> str:
    factory = make_session_factory(make_engine(url))
    with transaction(factory) as session:
        if session.execute(text("SELECT 1 FROM \"user\" WHERE username = 'bench'")).first():
            return create_token(session, "bench", days=1).token
        add_user(session, "bench", ["operator"])
        return create_token(session, "bench", days=1).token


def uncached_status(url: str) -> float:
    """Seconds one status summary takes to compute (what the API caches)."""
    from ccat_hpc.status import collect_status

    factory = make_session_factory(make_engine(url))
    with transaction(factory) as session:
        start = time.perf_counter()
        collect_status(session)
        return time.perf_counter() - start


def reads(api: str, token: str, url: str, args: argparse.Namespace) -> None:
    execution, file_id = samples(url)
    say(
        f"one status summary computed: {uncached_status(url) * 1000:.0f} ms (the API keeps it 15 s)"
    )
    endpoints = {
        "health (no ops-db)": "/health",
        "an execution's files": f"/api/v1/files?execution={execution}",
        "one file, every copy": f"/api/v1/files/{file_id}",
        "chain of custody": f"/api/v1/files/{file_id}/trace",
        "status summary (cached)": "/api/v1/status",
    }
    say(f"\n{'endpoint':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, path in endpoints.items():
        shown = wrk(api + path, token, args.seconds, args.connections)
        say(f"{name:<24} {shown['rps']:>8.1f} {shown['50%']:>8.1f} {shown['99%']:>8.1f}")


def observation(workdir: Path, module: str, count: int) -> Path:
    spec = SyntheticObservation(
        "PrimeCam", module, "ECDFS-deep-001", "chile-source-primecam", count, 16
    )
    manifest = write_observation(spec, workdir / "data" / spec.location)
    return drop_manifest(manifest, workdir / "manifests", module)


def file_by_cli(url: str, manifest: Path) -> float:
    start = time.perf_counter()
    subprocess.run([CCAT_BIN, "--db", url, "file", str(manifest)], check=True, capture_output=True)
    return time.perf_counter() - start


def file_by_api(api: str, token: str, manifest: Path, count: int) -> float:
    request = urllib.request.Request(
        f"{api}/api/v1/observations?name={manifest.name}",
        data=manifest.read_bytes(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as answer:
        filed = json.loads(answer.read())
    seconds = time.perf_counter() - start
    assert filed["status"] == "filed" and filed["files"] == count, filed
    return seconds


def filing(api: str, token: str, url: str, workdir: Path, count: int) -> None:
    """Four observations of ``count`` files, filed by the CLI and the API in turn."""
    modules = ("EoR-Spec", "850GHz", "280GHz", "350GHz")
    manifests = [observation(workdir, module, count) for module in modules]
    cli = [file_by_cli(url, manifests[0]), file_by_cli(url, manifests[3])]
    by_api = [file_by_api(api, token, m, count) for m in manifests[1:3]]
    say(f"\nfiling {count:,} files per observation, two each, in the order CLI API API CLI:")
    for name, times in (("ccat-hpc file", cli), ("the API", by_api)):
        shown = ", ".join(f"{count / t:,.0f} files/s ({t:.2f} s)" for t in times)
        say(f"  {name:<14} {shown}")
    ratio = (sum(cli) / len(cli)) / (sum(by_api) / len(by_api))
    say(f"  the API files {ratio:.2f}x as fast as ccat-hpc file (mean times)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--filing-files", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=58080)
    parser.add_argument("--workers", type=int, default=1, help="api serve --workers")
    parser.add_argument("--db-url", default=os.environ.get("CCAT_HPC_TEST_PG_URL"))
    parser.add_argument("--db-name", default="ccat_api_bench")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    if not args.db_url:
        parser.error("no --db-url and no $CCAT_HPC_TEST_PG_URL (scripts/services.sh env)")
    if not shutil.which("wrk"):
        parser.error("wrk is missing: apt-get install wrk")
    args.no_cleanup = False
    args.buffer_capacity = 0
    return args


def main() -> None:
    args = parse_args()
    admin_url = args.db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    url = database_url(admin_url, args.db_name)
    workdir = Path(tempfile.mkdtemp(prefix="ccat-api-bench-"))
    os.environ["CCAT_DATA_ROOT"] = str(workdir / "data")
    os.environ["CCAT_ARCHIVE_STORAGE"] = "disk"
    for name in ("chile-source-primecam", "chile-source-chai", "chile-buffer-01"):
        (workdir / "data" / name).mkdir(parents=True)
    server = None
    try:
        prepare(args, admin_url, url, Results())
        token = operator_token(url)
        server = serve(url, args.port, workdir / "api.log", args.workers)
        api = f"http://127.0.0.1:{args.port}"
        say(
            f"{args.files:,} files in ops-db; {args.connections} connections, {args.seconds} s each"
        )
        reads(api, token, url, args)
        filing(api, token, url, workdir, args.filing_files)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if not args.keep:
            run_admin(admin_url, f"DROP DATABASE IF EXISTS {args.db_name} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
