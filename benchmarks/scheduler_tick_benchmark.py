"""Scheduler tick time on PostgreSQL with years of archived history in ops-db.

Run by hand (PostgreSQL from ``scripts/services.sh up``, then
``eval "$(scripts/services.sh env)"``):

    .venv/bin/python benchmarks/scheduler_tick_benchmark.py [--files 1000000]
        [--db-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres]
        [--db-name ccat_tick_bench] [--passes 20] [--new-files 1000] [--new-file-runs 3]
        [--keep] [--reuse] [--no-cleanup] [--buffer-capacity BYTES]

Creates its own database on the server of ``--db-url`` (default
``$CCAT_HPC_TEST_PG_URL``), gives it the schema with the project's migrations, loads
the shipped sites and the example catalog, and writes ``--files`` archived files with
everything they leave behind (see ``tick_history.py``), then VACUUM ANALYZE. Then, each
pass being the public ``one_pass`` (snapshot + plan + apply) with the local executor:

- the first pass of a new engine (connection and SQLAlchemy's statement cache cold);
- ``--passes`` idle passes (nothing to do: the pass must submit nothing), and as many
  dry-run passes (snapshot + plan only);
- ``--new-file-runs`` times: ``--new-files`` files written to SOURCE and filed with the
  project's filing function, one dry-run pass, then one pass, which must submit exactly
  a checksum batch (the local executor starts its supervisor and returns); the batch
  is followed to its end, the files must be CHECKSUMMED, and they are then set
  ARCHIVED (they stay in ops-db) so the next pass is idle again.

Prints the SQL of an idle pass with each statement's time, the SQL of a pass with new
files, EXPLAIN (ANALYZE, BUFFERS) of every SELECT of the idle pass (the snapshot) and
a summary table with the goal (an idle tick ≤ 100 ms). The database is dropped at the
end unless ``--keep``; ``--reuse`` takes a kept one as it is (no populating).
``--no-cleanup`` leaves every copy VERIFIED (as if the cleanup step never ran), and
``--buffer-capacity`` gives the BUFFERs a capacity, so that each pass sums the bytes
of the packages they hold: together, the worst case of the buffer-fill query.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from tick_history import HistoryShape, populate
from tick_statements import Statement, median_times, recorded, show_explains, show_statements

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db import migrate
from ccat_hpc.db.models import JobBatch, RawDataFile
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.db.states import JobBatchState, RawDataFileState
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.jobs.step_batches import JobSetup
from ccat_hpc.pipeline.filing import file_manifest
from ccat_hpc.pipeline.manifest import read_manifest
from ccat_hpc.scheduler.loop import PassReport, one_pass
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from ccat_hpc.sites.schema import SlurmProfile
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 0.100
#: ops-db bytes per archived file (tables, indexes, TOAST), measured at 1M and 10M files
BYTES_PER_FILE = 1100
ENDED = (JobBatchState.DONE, JobBatchState.CANCELLED, JobBatchState.SUBMIT_FAILED)
SetupFor = Callable[[str], JobSetup]


@dataclass
class Results:
    files: int = 0
    database_bytes: int = 0
    populate: dict[str, float] = field(default_factory=dict)
    first_pass: float = 0.0
    idle: list[float] = field(default_factory=list)
    dry: list[float] = field(default_factory=list)
    dry_waiting: list[float] = field(default_factory=list)
    new_files: list[float] = field(default_factory=list)
    idle_after: list[float] = field(default_factory=list)
    batch_seconds: list[float] = field(default_factory=list)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def p95(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def say(line: str) -> None:
    print(line, flush=True)


# -- the database ----------------------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


def database_exists(admin_url: str, name: str) -> bool:
    admin = create_engine(admin_url)
    with admin.connect() as connection:
        found = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
    admin.dispose()
    return bool(found)


def run_admin(admin_url: str, statement: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(statement))
    admin.dispose()


def check_disk(admin_url: str, files: int) -> None:
    """Refuse to start when the server's data folder (if on this machine) lacks room."""
    admin = create_engine(admin_url)
    with admin.connect() as connection:
        folder = str(connection.scalar(text("SHOW data_directory")))
    admin.dispose()
    if not os.path.isdir(folder):
        return
    free = shutil.disk_usage(folder).free
    needed = int(files * BYTES_PER_FILE * 1.5)  # + WAL and sort space while loading
    say(f"disk: {free / 1e9:.1f} GB free at {folder}, ~{needed / 1e9:.1f} GB needed")
    if free < needed:
        sys.exit(f"not enough disk for {files:,} files: {free / 1e9:.1f} GB free")


def load_sites(factory: sessionmaker[Session]) -> None:
    """The shipped sites and the example catalog (upserts: a reused ops-db takes this
    run's folders below $CCAT_DATA_ROOT)."""
    with transaction(factory) as session:
        load_site_configs(session, read_site_configs(shipped_site_configs()))
    with transaction(factory) as session:
        load_catalog_file(session, example_catalog_path())


def prepare(args: argparse.Namespace, admin_url: str, url: str, results: Results) -> None:
    reuse = args.reuse and database_exists(admin_url, args.db_name)
    if not reuse:
        check_disk(admin_url, args.files)
        run_admin(admin_url, f"DROP DATABASE IF EXISTS {args.db_name} WITH (FORCE)")
        run_admin(admin_url, f"CREATE DATABASE {args.db_name}")
    engine = make_engine(url)
    start = time.perf_counter()
    migrate.upgrade(engine)
    load_sites(make_session_factory(engine))
    schema = time.perf_counter() - start
    if reuse:
        say(f"reusing database {args.db_name} as it is")
    else:
        shape = HistoryShape(args.files, cleanup=not args.no_cleanup)
        say(
            f"populating {args.db_name}: {shape.files:,} files, {shape.packages:,} "
            f"executions/packages, {shape.bundles:,} transfer packages over {shape.years:g} years"
        )
        results.populate = {"schema + sites + catalog": schema, **populate(engine, shape, say)}
        results.populate["total"] += schema
    if args.buffer_capacity:
        with engine.begin() as connection:  # the column comes with the buffer-fill change
            connection.execute(
                text("UPDATE data_location SET capacity_bytes = :c WHERE location_type = 'BUFFER'"),
                {"c": args.buffer_capacity},
            )
    with engine.connect() as connection:
        results.files = int(connection.scalar(text("SELECT count(*) FROM raw_data_file")) or 0)
        results.database_bytes = int(
            connection.scalar(text("SELECT pg_database_size(current_database())")) or 0
        )
    engine.dispose()


# -- passes ----------------------------------------------------------------------------


def timed_pass(
    factory: sessionmaker[Session], setup_for: SetupFor, *, dry_run: bool = False
) -> tuple[float, PassReport]:
    start = time.perf_counter()
    report = one_pass(factory, setup_for, dry_run=dry_run)
    return time.perf_counter() - start, report


def check(condition: bool, what: object) -> None:
    """A benchmark precondition (not an ``assert``: it holds under ``python -O`` too)."""
    if not condition:
        raise RuntimeError(f"unexpected: {what}")


def assert_idle(report: PassReport) -> None:
    idle = report.plan.empty and not report.submitted and not report.errors
    check(idle, f"an idle pass did something: {report}")


def idle_passes(
    factory: sessionmaker[Session], setup_for: SetupFor, count: int, *, dry_run: bool
) -> list[float]:
    times = []
    for _ in range(count):
        seconds, report = timed_pass(factory, setup_for, dry_run=dry_run)
        assert_idle(report)
        times.append(seconds)
    return times


def file_new_files(factory: sessionmaker[Session], workdir: Path, count: int) -> uuid.UUID:
    """Write ``count`` files to PrimeCam's SOURCE folder and file their manifest."""
    execution = uuid.uuid4()
    spec = SyntheticObservation(
        "PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", count, 4096
    )
    manifest = write_observation(spec, workdir / "data" / spec.location, execution_id=execution)
    path = drop_manifest(manifest, workdir / "inbox")
    parsed, digest = read_manifest(path)
    with transaction(factory) as session:
        filed = file_manifest(session, parsed, digest, path.name)
    check(filed.created and filed.file_count == count, filed)
    return execution


def follow_to_end(factory: sessionmaker[Session], setup_for: SetupFor, batch_id: int) -> float:
    """Passes that only follow batches (no step submits) until the batch has ended."""
    start = time.perf_counter()
    while time.perf_counter() - start < 600:
        one_pass(factory, setup_for, steps=())
        with factory() as session:
            if session.get_one(JobBatch, batch_id).state in ENDED:
                return time.perf_counter() - start
        time.sleep(0.2)
    raise RuntimeError(f"checksum batch {batch_id} did not end within 600 s")


def retire_execution(factory: sessionmaker[Session], execution: uuid.UUID) -> dict[str, int]:
    """The states of the execution's files; then they are set ARCHIVED, so no step waits
    for them and the next pass is idle again. (They stay: deleting a file's copy costs a
    scan of raw_data_file_check per copy, which has no index on physical_copy_id.)"""
    files = RawDataFile.executed_obs_unit_id == execution
    with transaction(factory) as session:
        states = session.execute(
            select(RawDataFile.state, func.count()).where(files).group_by(RawDataFile.state)
        ).all()
        session.execute(
            update(RawDataFile)
            .where(files)
            .values(state=RawDataFileState.ARCHIVED)
            .execution_options(synchronize_session=False)
        )
    return {str(state): count for state, count in states}


def new_files_run(
    engine: Engine,
    setup_for: SetupFor,
    workdir: Path,
    args: argparse.Namespace,
) -> tuple[float, float, float, list[Statement]]:
    """(dry-run pass, pass, seconds until the batch ended, the pass's statements)."""
    factory = make_session_factory(engine)
    execution = file_new_files(factory, workdir, args.new_files)
    dry, report = timed_pass(factory, setup_for, dry_run=True)
    check([a.step for a in report.plan.submit] == ["checksum"], report)
    with recorded(engine) as statements:
        seconds, report = timed_pass(factory, setup_for)
    check(list(report.submitted) == ["checksum"] and not report.errors, report)
    batch_seconds = follow_to_end(factory, setup_for, report.submitted["checksum"])
    states = retire_execution(factory, execution)
    check(states == {RawDataFileState.CHECKSUMMED.value: args.new_files}, states)
    return dry, seconds, batch_seconds, statements


def measure_idle(
    engine: Engine, setup_for: SetupFor, args: argparse.Namespace, results: Results
) -> None:
    """Idle and dry-run passes; the SQL of an idle pass and its plans."""
    factory = make_session_factory(engine)
    results.first_pass, report = timed_pass(factory, setup_for)
    assert_idle(report)
    idle_passes(factory, setup_for, 3, dry_run=False)  # warm-up
    results.idle = idle_passes(factory, setup_for, args.passes, dry_run=False)
    results.dry = idle_passes(factory, setup_for, args.passes, dry_run=True)
    runs, pass_seconds = [], []
    for _ in range(5):
        with recorded(engine) as statements:
            seconds, report = timed_pass(factory, setup_for)
        assert_idle(report)
        runs.append(statements)
        pass_seconds.append(seconds)
    title = "SQL of an idle pass (median of 5 passes)"
    show_statements(title, median_times(runs), statistics.median(pass_seconds))
    show_explains(engine, runs[0])


def measure_new_files(
    engine: Engine, setup_for: SetupFor, workdir: Path, args: argparse.Namespace, results: Results
) -> None:
    """Passes with new files waiting, then idle passes again (dead rows not vacuumed yet)."""
    statements: list[Statement] = []
    for run in range(args.new_file_runs):
        dry, seconds, batch_seconds, statements = new_files_run(engine, setup_for, workdir, args)
        say(
            f"run {run + 1}: {args.new_files:,} new files: dry-run {ms(dry)}, pass {ms(seconds)}"
            f" (checksum batch ended {batch_seconds:.1f} s later)"
        )
        results.dry_waiting.append(dry)
        results.new_files.append(seconds)
        results.batch_seconds.append(batch_seconds)
    if statements:
        title = f"SQL of the last pass with {args.new_files:,} new files"
        show_statements(title, [(s, s.seconds) for s in statements], results.new_files[-1])
        factory = make_session_factory(engine)
        results.idle_after = idle_passes(factory, setup_for, args.passes, dry_run=False)


def measure(url: str, workdir: Path, args: argparse.Namespace, results: Results) -> None:
    engine = make_engine(url)
    environment = {"CCAT_HPC_DB": url, "PYTHONPATH": str(REPO)}
    executor = LocalExecutor(state_root=workdir / "local-jobs")
    setup = JobSetup(executor, environment, workdir / "jobs", SlurmProfile())

    def setup_for(_step: str) -> JobSetup:
        return setup

    measure_idle(engine, setup_for, args, results)
    measure_new_files(engine, setup_for, workdir, args, results)
    engine.dispose()


# -- output ----------------------------------------------------------------------------


def spread(samples: Sequence[float]) -> str:
    return f"{ms(statistics.median(samples))} / {ms(p95(samples))}"


def summary(results: Results, args: argparse.Namespace) -> None:
    populated = results.populate.get("total")
    n = f"{args.new_files:,}"
    rows = [
        ("files in ops-db (archived)", f"{results.files:,}"),
        ("ops-db size", f"{results.database_bytes / 1e9:.2f} GB"),
        ("populate (schema, history, VACUUM)", f"{populated:.1f} s" if populated else "reused"),
        ("first pass (new engine, cold)", ms(results.first_pass)),
        (f"idle tick, median / p95 ({len(results.idle)})", spread(results.idle)),
        (f"dry-run tick, median / p95 ({len(results.dry)})", spread(results.dry)),
    ]
    if results.new_files:
        runs, after = len(results.new_files), len(results.idle_after)
        batch = statistics.median(results.batch_seconds)
        rows += [
            (f"dry-run tick, {n} files waiting, median / p95", spread(results.dry_waiting)),
            (f"tick with {n} new files, median / p95 ({runs})", spread(results.new_files)),
            ("  (its checksum batch ended after, median)", f"{batch:.1f} s"),
            (f"idle tick after those, median / p95 ({after})", spread(results.idle_after)),
        ]
    worst = max(statistics.median(results.idle), p95(results.idle))
    verdict = "met" if worst <= GOAL_SECONDS else "NOT met"
    rows.append((f"goal: idle tick ≤ {ms(GOAL_SECONDS)} (median, p95)", verdict))
    say(f"\nscheduler tick on PostgreSQL, database {args.db_name}")
    for label, value in rows:
        say(f"  {label:<50} {value:>22}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000, help="archived files")
    parser.add_argument(
        "--db-url",
        default=os.environ.get("CCAT_HPC_TEST_PG_URL"),
        help="a PostgreSQL server URL (default $CCAT_HPC_TEST_PG_URL)",
    )
    parser.add_argument("--db-name", default="ccat_tick_bench")
    parser.add_argument("--passes", type=int, default=20, help="idle and dry-run passes")
    parser.add_argument("--new-files", type=int, default=1000)
    parser.add_argument("--new-file-runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true", help="take a kept database as it is")
    parser.add_argument(
        "--buffer-capacity",
        type=int,
        default=0,
        help="give every BUFFER this capacity_bytes, so a pass counts how full it is",
    )
    parser.add_argument(
        "--no-cleanup",
        action="store_true",
        help="every copy stays VERIFIED (as if the cleanup step never ran)",
    )
    args = parser.parse_args(argv)
    if not args.db_url:
        parser.error("no --db-url and no $CCAT_HPC_TEST_PG_URL (scripts/services.sh env)")
    if not args.db_url.startswith("postgresql"):
        parser.error("--db-url must be a PostgreSQL server URL")
    return args


def main() -> None:
    args = parse_args()
    admin_url = args.db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    url = database_url(admin_url, args.db_name)
    workdir = Path(tempfile.mkdtemp(prefix="ccat-tick-bench-"))
    os.environ["CCAT_DATA_ROOT"] = str(workdir / "data")
    os.environ["CCAT_ARCHIVE_STORAGE"] = "disk"
    for name in ("chile-source-primecam", "chile-source-chai", "chile-buffer-01"):
        (workdir / "data" / name).mkdir(parents=True)
    results = Results()
    try:
        prepare(args, admin_url, url, results)
        measure(url, workdir, args, results)
        summary(results, args)
    finally:
        if not args.keep:
            run_admin(admin_url, f"DROP DATABASE IF EXISTS {args.db_name} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
